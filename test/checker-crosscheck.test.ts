// test/jepsen/checker.ts against a brute-force reference, on thousands of small random histories.
//
// The checker prunes its search with shortcuts specific to the register model (a dead-end cut, unread values
// merged, info ops tried only when needed, identical info ops deduplicated). A wrong shortcut would show up as the
// checker rejecting a history that some linearization explains (or accepting one none does), which hand-made cases
// easily miss. The reference below has no shortcut at all: it is the definition of linearizability, enumerated.
import t, { type Test } from 'tap';
import { checkKey, describeOp } from './jepsen/checker.js';
import type { KeyState, Op, OpKind, Outcome } from './jepsen/history.js';

const KEY = 'k';

// ---------------------------------------------------------------------------------------------------------------
// The reference.
//
// Ops considered: `ok` ops, and `info` ops other than gets (a `fail` op took no effect; an info get took none and its
// result is unknown, so it constrains nothing). For every subset of the info ops, and every order of the chosen info
// ops plus all ok ops, the order must respect real time and the model, replayed in that order, must give every ok
// op's recorded result. The history is valid iff some subset and order do.
//
// Real time: op a must come before op b iff a.end < b.start, strictly, where an info op's end is +∞ (it may take
// effect any time after its start, so nothing has to come after it). An op that starts exactly when another ends is
// concurrent with it: the checker sorts invocations before returns at equal times, so the later-starting op is
// pending before the earlier one has returned and may be linearized first. That is the reading matched here.
//
// The orders are enumerated depth-first and a prefix is abandoned as soon as it breaks real time or the model: no
// extension of such a prefix can be a valid order, so this is the same as filtering every full permutation.
// ---------------------------------------------------------------------------------------------------------------

const considered = (ops: Op[]): Op[] =>
  ops.filter((o) => o.outcome === 'ok' || (o.outcome === 'info' && o.kind !== 'get'));

const endOf = (o: Op): number => (o.outcome === 'info' ? Infinity : o.end);

/** Applies `o` to `s` (a copy is returned), or returns null if `o` is ok and its recorded result disagrees. */
const step = (s: KeyState, o: Op): KeyState | null => {
  const checked = o.outcome === 'ok';
  switch (o.kind) {
    case 'put':
      return { v: o.value!, c: s.c };
    case 'get': {
      const r = o.result as KeyState;
      return r.v === s.v && r.c === s.c ? s : null;
    }
    case 'cond_put': {
      const holds = s.v === o.expect;
      if (checked && o.result !== holds) return null;
      return holds ? { v: o.value!, c: s.c } : s;
    }
    case 'add': {
      const c = s.c + o.delta!;
      if (checked && o.result !== c) return null;
      return { v: s.v, c };
    }
  }
};

/**
 * Is there an order of `chosen` respecting real time in which the model gives every ok op its result? With `memo`,
 * a (placed set, state) pair from which no order was found is not explored again: what can follow a prefix depends
 * only on which ops it placed and on the state it left (used for the longer histories only).
 */
const someOrder = (chosen: Op[], memo = false): boolean => {
  const placed = new Array<boolean>(chosen.length).fill(false);
  const failed = new Set<string>();
  const extend = (s: KeyState, count: number): boolean => {
    if (count === chosen.length) return true;
    const key = memo ? `${placed.map(Number).join('')} ${s.v} ${s.c}` : '';
    if (memo && failed.has(key)) return false;
    for (let j = 0; j < chosen.length; j++) {
      if (placed[j]) continue;
      const b = chosen[j]!;
      // Every op that must precede b is already placed.
      if (chosen.some((a, i) => i !== j && !placed[i] && endOf(a) < b.start)) continue;
      const next = step(s, b);
      if (next === null) continue;
      placed[j] = true;
      const found = extend(next, count + 1);
      placed[j] = false;
      if (found) return true;
    }
    if (memo) failed.add(key);
    return false;
  };
  return extend({ v: null, c: 0 }, 0);
};

const bruteForce = (ops: Op[], memo = false): boolean => {
  const live = considered(ops);
  const ok = live.filter((o) => o.outcome === 'ok');
  const info = live.filter((o) => o.outcome === 'info');
  for (let mask = 0; mask < 1 << info.length; mask++) {
    if (someOrder([...ok, ...info.filter((_, i) => (mask >> i) & 1)], memo)) return true;
  }
  return false;
};

// ---------------------------------------------------------------------------------------------------------------
// Random small histories.
// ---------------------------------------------------------------------------------------------------------------

/** Mulberry32, as in checker.test.ts. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
};
type Random = () => number;

/** At most this many ops are considered (ok ops and info non-gets), so that the reference stays cheap. */
const MAX_CONSIDERED = 8;
/** At most this many info ops are considered (2^this subsets). */
const MAX_INFO = 4;
/** Times are small integers (sometimes halves), so that starts and ends often coincide. */
const TIME_SPAN = 12;
/** Longer histories: LONG_MIN to LONG_MIN + LONG_EXTRA - 1 considered ops, at most LONG_MAX_INFO of them info. */
const LONG_MIN = 30;
const LONG_EXTRA = 16;
const LONG_MAX_INFO = 3;
const LONG_INFO_RATE = 0.1;

interface Shape {
  /** The values puts and cond_puts write and expect: 0..values-1 (1 or 2 make values repeat a lot). */
  values: number;
  /** The deltas adds add: all ≥ 0 (so the checker's monotonic rule applies) or some negative. */
  deltas: number[];
  kinds: OpKind[];
  infoRate: number;
  failRate: number;
  /** How often a new info op copies an earlier info op's kind and arguments (identical effects). */
  cloneRate: number;
  /** Longest interval around an op's point. */
  spread: number;
  /** Points and starts are drawn from [0, span). */
  span: number;
  /** At most this many info ops are considered (2^this subsets). */
  maxInfo: number;
}

const pick = <T>(random: Random, xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const int = (random: Random, n: number): number => Math.floor(random() * n);
const time = (random: Random, max: number): number => (random() < 0.2 ? int(random, 2 * max) / 2 : int(random, max));

const randomShape = (random: Random): Shape => {
  const deltaSets = [[1], [0, 1], [0, 1, 2], [-1, 1], [-2, -1, 0, 1, 2], [1, 2], [-1, 0], [0]];
  const kindSets: OpKind[][] = [
    ['put', 'get', 'cond_put', 'add'],
    ['put', 'get', 'cond_put'],
    ['put', 'cond_put', 'get', 'get'],
    ['add', 'get'],
    ['add', 'get', 'put'],
    ['cond_put', 'get'],
  ];
  return {
    values: pick(random, [1, 2, 2, 3, 3, 4, 6]),
    deltas: pick(random, deltaSets),
    kinds: pick(random, kindSets),
    infoRate: pick(random, [0, 0.2, 0.35, 0.5]),
    failRate: pick(random, [0, 0.1]),
    cloneRate: pick(random, [0, 0.5, 0.8]),
    spread: pick(random, [1, 2, 4, 8]),
    span: TIME_SPAN,
    maxInfo: MAX_INFO,
  };
};

/** A new op's kind and arguments; results and outcome are filled in later. */
const randomCall = (random: Random, shape: Shape, infos: Op[], outcome: Outcome): Op => {
  if (outcome === 'info' && infos.length > 0 && random() < shape.cloneRate) {
    const { kind, value, expect, delta } = pick(random, infos);
    const o: Op = { process: 0, key: KEY, kind, start: 0, end: 0, outcome };
    if (value !== undefined) o.value = value;
    if (expect !== undefined) o.expect = expect;
    if (delta !== undefined) o.delta = delta;
    return o;
  }
  const kind = pick(random, shape.kinds);
  const o: Op = { process: 0, key: KEY, kind, start: 0, end: 0, outcome };
  if (kind === 'put') o.value = int(random, shape.values);
  if (kind === 'cond_put') {
    o.expect = int(random, shape.values);
    o.value = int(random, shape.values);
  }
  if (kind === 'add') o.delta = pick(random, shape.deltas);
  return o;
};

const randomOutcome = (random: Random, shape: Shape, infos: number): Outcome => {
  const roll = random();
  if (roll < shape.infoRate && infos < shape.maxInfo) return 'info';
  if (roll < shape.infoRate + shape.failRate) return 'fail';
  return 'ok';
};

const finish = (ops: Op[]): Op[] => {
  ops.forEach((o, i) => {
    o.process = i + 1;
    if (o.outcome === 'info') o.error = 'TIMEOUT';
    if (o.outcome === 'fail') o.error = 'UNAVAILABLE';
    if (o.outcome !== 'ok') delete o.result;
  });
  return ops;
};

/**
 * Valid by construction: ops take effect in the order of their points (ties in any order: the checker counts equal
 * times as concurrent), each in an interval around its point; ok results come from that execution. An info op takes
 * effect at its point, possibly after its end, or never; a fail op never does.
 */
const fromExecution = (random: Random, shape: Shape, count: number): { ops: Op[]; states: KeyState[] } => {
  const ops: Op[] = [];
  const infos: Op[] = [];
  const applied: { op: Op; at: number }[] = [];
  while (considered(ops).length < count) {
    const outcome = randomOutcome(random, shape, infos.length);
    const o = randomCall(random, shape, infos, outcome);
    const at = time(random, shape.span);
    o.start = Math.max(0, at - time(random, shape.spread));
    o.end = at + time(random, shape.spread);
    if (outcome === 'info') {
      if (o.kind !== 'get') infos.push(o);
      // Took effect after its end, or before; or never.
      if (random() < 0.3) o.end = o.start + time(random, Math.max(1, at - o.start));
      if (random() < 0.7) applied.push({ op: o, at });
    } else if (outcome === 'ok') applied.push({ op: o, at });
    ops.push(o);
  }
  applied.sort((a, b) => a.at - b.at);
  let s: KeyState = { v: null, c: 0 };
  const states: KeyState[] = [s];
  for (const { op: o } of applied) {
    switch (o.kind) {
      case 'put':
        o.result = null;
        s = { v: o.value!, c: s.c };
        break;
      case 'get':
        o.result = { ...s };
        break;
      case 'cond_put':
        o.result = s.v === o.expect;
        if (o.result) s = { v: o.value!, c: s.c };
        break;
      case 'add':
        s = { v: s.v, c: s.c + o.delta! };
        o.result = s.c;
        break;
    }
    states.push(s);
  }
  return { ops: finish(ops), states };
};

/** A valid-by-construction history with one ok op's result (or interval) changed: often, not always, invalid. */
const mutated = (random: Random, shape: Shape, count: number): Op[] => {
  const { ops, states } = fromExecution(random, shape, count);
  const oks = ops.filter((o) => o.outcome === 'ok');
  if (oks.length === 0) return ops;
  const o = pick(random, oks);
  const roll = random();
  if (roll < 0.15) {
    // Move it: earlier or later, which may break real-time order.
    const shift = time(random, 6) * (random() < 0.5 ? -1 : 1);
    o.start = Math.max(0, o.start + shift);
    o.end = Math.max(o.start, o.end + shift);
    return ops;
  }
  switch (o.kind) {
    case 'put':
      // A put's result is not checked: change what it wrote (maybe to a value nobody else writes).
      o.value = int(random, shape.values + 1);
      break;
    case 'get': {
      const r = o.result as KeyState;
      const which = random();
      if (which < 0.4) o.result = { ...pick(random, states) }; // a state that appeared (maybe earlier)
      else if (which < 0.7) o.result = { v: r.v, c: r.c + (random() < 0.5 ? 1 : -1) };
      else o.result = { v: random() < 0.2 ? null : int(random, shape.values), c: r.c };
      break;
    }
    case 'cond_put':
      if (random() < 0.6) o.result = !o.result;
      else o.expect = int(random, shape.values);
      break;
    case 'add':
      if (random() < 0.7) o.result = (o.result as number) + (random() < 0.5 ? 1 : -1);
      else o.result = pick(random, states).c + o.delta!;
      break;
  }
  return ops;
};

/** Arbitrary: random intervals and random (but plausible-looking) results. */
const arbitrary = (random: Random, shape: Shape, count: number): Op[] => {
  const ops: Op[] = [];
  const infos: Op[] = [];
  const cs = [0, ...shape.deltas];
  while (considered(ops).length < count) {
    const outcome = randomOutcome(random, shape, infos.length);
    const o = randomCall(random, shape, infos, outcome);
    o.start = time(random, shape.span);
    o.end = o.start + time(random, shape.spread + 1);
    if (outcome === 'info' && o.kind !== 'get') infos.push(o);
    if (outcome === 'ok') {
      const c = () => pick(random, cs) + pick(random, cs) * int(random, 3);
      switch (o.kind) {
        case 'put':
          o.result = null;
          break;
        case 'get':
          o.result = { v: random() < 0.25 ? null : int(random, shape.values), c: c() };
          break;
        case 'cond_put':
          o.result = random() < 0.5;
          break;
        case 'add':
          o.result = c() + (random() < 0.5 ? o.delta! : 0);
          break;
      }
    }
    ops.push(o);
  }
  return finish(ops);
};

const generate = (seed: number, long = false): { kind: string; ops: Op[] } => {
  const random = prng(seed);
  const shape = randomShape(random);
  // Mostly 1–7 considered ops; sometimes the maximum.
  let count = random() < 0.15 ? MAX_CONSIDERED : 1 + int(random, 7);
  if (long) {
    // Past 32 ok ops (the checker's bitsets are 32-bit words), at low concurrency so that the reference keeps up.
    count = LONG_MIN + int(random, LONG_EXTRA);
    shape.span = count * 2;
    shape.spread = pick(random, [1, 2, 3]);
    shape.maxInfo = LONG_MAX_INFO;
    shape.infoRate = Math.min(shape.infoRate, LONG_INFO_RATE);
  }
  const roll = random();
  if (roll < 0.4) return { kind: 'execution', ops: fromExecution(random, shape, count).ops };
  if (roll < 0.75) return { kind: 'mutated', ops: mutated(random, shape, count) };
  return { kind: 'arbitrary', ops: arbitrary(random, shape, count) };
};

// ---------------------------------------------------------------------------------------------------------------
// Comparing, and shrinking a mismatch.
// ---------------------------------------------------------------------------------------------------------------

const mismatch = (ops: Op[], memo = false): boolean => checkKey(ops).ok !== bruteForce(ops, memo);

/** How many mismatches a run shrinks and prints. */
const MISMATCHES_SHOWN = 5;

/** Drops ops one at a time while the checker and the reference still disagree. */
const shrink = (ops: Op[], memo = false): Op[] => {
  let current = ops;
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = 0; i < current.length; i++) {
      const smaller = current.filter((_, j) => j !== i);
      if (mismatch(smaller, memo)) {
        current = smaller;
        changed = true;
        break;
      }
    }
  }
  return current;
};

const show = (ops: Op[]): string => ops.map((o) => `  ${describeOp(o)}`).join('\n');

// ---------------------------------------------------------------------------------------------------------------
// Regressions: shrunk counterexamples the cross-check found, each with the reference's verdict.
// ---------------------------------------------------------------------------------------------------------------

type Args = Partial<Op>;
const op = (process: number, kind: OpKind, start: number, end: number, outcome: Outcome, args: Args = {}): Op => ({
  process,
  key: KEY,
  kind,
  start,
  end,
  outcome,
  ...args,
});

// The only mismatch found: with no `ok` op to linearize, the search started with no candidate (an info op is only
// tried when a pending ok op needs it) and reported that dead end as a violation, before it ever checked that
// every ok op (none) was linearized. Each seed shrank to the empty history; these are what the runs would produce
// (a key whose every op failed or timed out during a partition).
const REGRESSIONS: { name: string; ops: Op[]; valid: boolean }[] = [
  { name: 'the empty history (every shrunk counterexample)', ops: [], valid: true },
  {
    name: 'a key whose every op failed',
    ops: [
      op(1, 'put', 0, 1, 'fail', { value: 1, error: 'UNAVAILABLE' }),
      op(2, 'cond_put', 0, 2, 'fail', { expect: 1, value: 2, error: 'UNAVAILABLE' }),
    ],
    valid: true,
  },
  {
    name: 'a key whose every op timed out',
    ops: [
      op(1, 'put', 0, 5, 'info', { value: 1, error: 'TIMEOUT' }),
      op(2, 'add', 1, 6, 'info', { delta: 1, error: 'TIMEOUT' }),
      op(3, 'get', 3, 8, 'info', { error: 'TIMEOUT' }),
    ],
    valid: true,
  },
  {
    name: 'a key with only an info get',
    ops: [op(1, 'get', 0, 5, 'info', { error: 'TIMEOUT' })],
    valid: true,
  },
];

t.test('regressions: shrunk counterexamples agree with the reference', async (t) => {
  for (const { name, ops, valid } of REGRESSIONS) {
    t.equal(bruteForce(ops), valid, `${name}: the reference says ${valid ? 'valid' : 'invalid'}`);
    const verdict = checkKey(ops);
    t.equal(verdict.ok, valid, name, verdict.ok ? {} : { explanation: verdict.explanation });
  }
});

t.test('the reference itself, on hand-made histories', async (t) => {
  const put = (p: number, s: number, e: number, value: number) => op(p, 'put', s, e, 'ok', { value, result: null });
  const get = (p: number, s: number, e: number, v: number | null, c = 0) =>
    op(p, 'get', s, e, 'ok', { result: { v, c } });
  t.ok(bruteForce([]), 'the empty history');
  t.ok(bruteForce([put(1, 0, 10, 1), get(2, 5, 15, null)]), 'a concurrent get may precede the put');
  t.notOk(bruteForce([put(1, 0, 10, 1), get(2, 11, 15, null)]), 'a later get may not');
  t.ok(bruteForce([put(1, 0, 10, 1), get(2, 10, 15, null)]), 'starting when the put ends counts as concurrent');
  t.ok(bruteForce([op(1, 'put', 0, 1, 'info', { value: 1 }), get(2, 5, 6, null), get(2, 7, 8, 1)]), 'a late info put');
  t.notOk(
    bruteForce([op(1, 'put', 0, 1, 'fail', { value: 1 }), get(2, 7, 8, 1)]),
    'a fail put never takes effect',
  );
  t.notOk(
    bruteForce([op(1, 'add', 0, 1, 'info', { delta: 1 }), get(2, 5, 6, null, 2)]),
    'an info add takes effect at most once',
  );
});

/** CROSSCHECK_CASES, CROSSCHECK_LONG_CASES and CROSSCHECK_SEED run other (e.g. many more) seeds by hand. */
const CASES = Number(process.env.CROSSCHECK_CASES ?? 30_000);
const LONG_CASES = Number(process.env.CROSSCHECK_LONG_CASES ?? 2_000);
const FIRST_SEED = Number(process.env.CROSSCHECK_SEED ?? 1);

const crosscheck = (t: Test, cases: number, long: boolean): void => {
  const counts = new Map<string, { valid: number; invalid: number }>();
  let mismatches = 0;
  const began = performance.now();
  for (let seed = FIRST_SEED; seed < FIRST_SEED + cases; seed++) {
    const { kind, ops } = generate(seed, long);
    const expected = bruteForce(ops, long);
    const verdict = checkKey(ops);
    const count = counts.get(kind) ?? { valid: 0, invalid: 0 };
    counts.set(kind, count);
    if (expected) count.valid++;
    else count.invalid++;
    if (verdict.ok === expected) continue;
    mismatches++;
    if (mismatches <= MISMATCHES_SHOWN) {
      const small = shrink(ops, long);
      t.fail(
        `seed ${seed} (${kind}${long ? ', long' : ''}): checker says ${verdict.ok ? 'valid' : 'invalid'}, ` +
          `reference ${expected ? 'valid' : 'invalid'}`,
        { diagnostic: true, shrunk: `\n${show(small)}`, json: JSON.stringify(small) },
      );
    }
  }
  const ms = performance.now() - began;
  let valid = 0;
  let invalid = 0;
  for (const [kind, c] of counts) {
    t.comment(`${kind}: ${c.valid} valid, ${c.invalid} invalid`);
    valid += c.valid;
    invalid += c.invalid;
  }
  t.comment(`${cases} histories: ${valid} valid, ${invalid} invalid, ${mismatches} mismatches, ${ms.toFixed(0)} ms`);
  t.equal(mismatches, 0, 'no mismatches');
  t.ok(valid > cases / 4 && invalid > cases / 4, 'both verdicts are well represented');
};

t.test(`checkKey agrees with the brute-force reference on ${CASES} small random histories`, async (t) => {
  crosscheck(t, CASES, false);
});

t.test(`checkKey agrees with the (memoized) reference on ${LONG_CASES} longer random histories`, async (t) => {
  crosscheck(t, LONG_CASES, true);
});

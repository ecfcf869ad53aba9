// test/jepsen/checker.ts: the per-key linearizability checker, on hand-made histories and on random ones generated
// from a real sequential execution.
import t, { type Test } from 'tap';
import { checkHistory, checkKey, describeOp, type KeyVerdict } from './jepsen/checker.js';
import type { KeyState, Op, OpKind, Outcome } from './jepsen/history.js';

const KEY = 'k';

interface Args {
  value?: number;
  expect?: number;
  delta?: number;
  result?: Op['result'];
  key?: string;
}

/** One operation of process `process` over [start, end]. */
const op = (process: number, kind: OpKind, start: number, end: number, outcome: Outcome, args: Args = {}): Op => {
  const { key = KEY, ...rest } = args;
  return { process, key, kind, start, end, outcome, ...rest };
};
const put = (p: number, s: number, e: number, value: number, outcome: Outcome = 'ok') =>
  op(p, 'put', s, e, outcome, outcome === 'ok' ? { value, result: null } : { value });
const get = (p: number, s: number, e: number, v: number | null, c = 0) =>
  op(p, 'get', s, e, 'ok', { result: { v, c } });
const add = (p: number, s: number, e: number, delta: number, result?: number) =>
  op(p, 'add', s, e, result === undefined ? 'info' : 'ok', result === undefined ? { delta } : { delta, result });
const cas = (p: number, s: number, e: number, expect: number, value: number, result?: boolean) =>
  op(p, 'cond_put', s, e, result === undefined ? 'info' : 'ok', { expect, value, result });

const accepts = (t: Test, ops: Op[], what: string): void => {
  const verdict = checkKey(ops);
  t.ok(verdict.ok, what, verdict.ok ? {} : { diagnostic: true, explanation: verdict.explanation });
};
const rejects = (t: Test, ops: Op[], what: string): KeyVerdict => {
  const verdict = checkKey(ops);
  t.notOk(verdict.ok, what);
  if (!verdict.ok) t.equal(verdict.unknown, false, `${what}: a violation, not an unknown`);
  return verdict;
};

t.test('rejects a stale read', async (t) => {
  rejects(t, [put(1, 0, 10, 1), put(1, 20, 30, 2), get(2, 40, 50, 1)], 'get after put(2) returns 1');
  rejects(t, [put(1, 0, 10, 1), get(2, 20, 30, null)], 'get after an acknowledged put sees the key absent');
});

t.test('rejects a lost write', async (t) => {
  rejects(t, [put(1, 0, 10, 1), put(2, 5, 15, 2), get(3, 40, 50, null)], 'both puts lost');
  rejects(
    t,
    [add(1, 0, 10, 1, 1), add(2, 20, 30, 1, 2), get(3, 40, 50, null, 1)],
    'two adds acknowledged, the counter shows one',
  );
  rejects(t, [add(1, 0, 10, 1, 1), get(1, 20, 30, null, 0)], 'an acknowledged add is lost');
});

t.test('rejects a double-applied add', async (t) => {
  rejects(t, [add(1, 0, 10, 1, 1), add(2, 20, 30, 1, 2), get(3, 40, 50, null, 3)], 'two adds of 1, the counter shows 3');
  rejects(t, [add(1, 0, 10, 1, 1), add(2, 20, 30, 1, 3)], 'add results 1 then 3 with nothing between');
  rejects(t, [add(1, 0, 10, 1), get(2, 20, 30, null, 2)], 'an info add applied twice');
});

t.test('rejects a failed cond_put that was applied', async (t) => {
  rejects(
    t,
    [put(1, 0, 10, 1), cas(2, 20, 30, 5, 2, false), get(3, 40, 50, 2)],
    'cond_put(5→2) answered false, yet 2 is read and nobody else wrote it',
  );
  rejects(t, [put(1, 0, 10, 1), cas(2, 20, 30, 1, 2, false)], 'cond_put(1→2) answered false while v was 1');
  rejects(t, [cas(1, 0, 10, 0, 1, true)], 'cond_put on an absent key succeeded');
  rejects(
    t,
    [put(1, 0, 10, 1), cas(2, 20, 30, 1, 2, true), cas(3, 20, 30, 1, 3, true)],
    'two concurrent cond_puts on the same expect both succeeded',
  );
});

t.test('rejects an add result no order explains', async (t) => {
  rejects(t, [add(1, 0, 10, 1, 2), add(2, 0, 10, 2, 2)], 'add(1) → 2 and add(2) → 2, concurrent');
  rejects(t, [add(1, 0, 10, 1, 1), add(2, 0, 10, 1, 1)], 'two concurrent add(1)s both → 1');
});

t.test('accepts a concurrent put and get seeing either value', async (t) => {
  accepts(t, [put(1, 0, 10, 1), put(1, 20, 40, 2), get(2, 25, 35, 1)], 'sees the old value');
  accepts(t, [put(1, 0, 10, 1), put(1, 20, 40, 2), get(2, 25, 35, 2)], 'sees the new value');
  accepts(t, [put(1, 0, 10, 1), get(2, 10, 20, null)], 'a get starting when the put ends counts as concurrent');
  rejects(t, [put(1, 0, 10, 1), put(1, 20, 40, 2), get(2, 25, 35, 3)], 'but not a value nobody wrote');
});

t.test('accepts overlapping adds in any order with matching results', async (t) => {
  accepts(t, [add(1, 0, 10, 1, 3), add(2, 1, 11, 1, 1), add(3, 2, 12, 1, 2), get(4, 20, 30, null, 3)], 'three adds');
  accepts(t, [add(1, 0, 10, 2, 5), add(2, 0, 10, 3, 3)], 'add(3) first, then add(2)');
});

t.test('accepts info ops that took effect or not', async (t) => {
  accepts(t, [put(1, 0, 10, 1), put(2, 20, 30, 2, 'info'), get(3, 40, 50, 2)], 'an info put seen by a later get');
  accepts(t, [put(1, 0, 10, 1), put(2, 20, 30, 2, 'info'), get(3, 40, 50, 1)], 'an info put never seen');
  accepts(t, [add(1, 0, 10, 1, 1), add(2, 20, 30, 1), get(3, 40, 50, null, 2)], 'an info add that took effect');
  accepts(t, [add(1, 0, 10, 1, 1), add(2, 20, 30, 1), get(3, 40, 50, null, 1)], 'an info add that did not');
  accepts(
    t,
    [put(1, 0, 10, 1), put(2, 20, 30, 2, 'info'), get(3, 40, 50, 1), get(3, 60, 70, 2)],
    'an info put taking effect after its own end',
  );
  accepts(
    t,
    [add(1, 0, 10, 1), add(2, 5, 6, 1), add(3, 7, 8, 1), get(4, 40, 50, null, 2), get(4, 60, 70, null, 3)],
    'info adds taking effect one by one, long after they ended',
  );
  accepts(
    t,
    [put(1, 0, 10, 1), cas(2, 20, 30, 1, 2), get(3, 40, 50, 2), put(1, 60, 70, 1), get(3, 80, 90, 1)],
    'an info cond_put that took effect',
  );
  rejects(
    t,
    [put(1, 0, 10, 1), put(2, 20, 30, 2, 'info'), get(3, 40, 50, 2), get(3, 60, 70, 1)],
    'but an info put takes effect once: 2 then 1 again is a violation',
  );
  rejects(t, [put(2, 20, 30, 2, 'info'), get(3, 0, 10, 2)], 'and not before its start');
  accepts(
    t,
    [put(1, 0, 10, 9, 'fail'), { ...op(2, 'get', 0, 10, 'info'), error: 'TIMEOUT' }, get(3, 20, 30, null)],
    'fail ops and info gets are left out',
  );
});

t.test('accepts cond_put success and failure chains', async (t) => {
  accepts(
    t,
    [
      put(1, 0, 10, 1),
      cas(1, 20, 30, 1, 2, true),
      cas(2, 40, 50, 1, 3, false),
      cas(1, 60, 70, 2, 3, true),
      get(2, 80, 90, 3),
    ],
    'a chain',
  );
  accepts(t, [cas(1, 0, 10, 0, 1, false), get(1, 20, 30, null)], 'cond_put on an absent key fails');
  accepts(
    t,
    [put(1, 0, 10, 1), cas(2, 20, 30, 1, 2, true), cas(3, 20, 30, 1, 3, false), get(1, 40, 50, 2)],
    'two concurrent cond_puts, one wins',
  );
  accepts(
    t,
    [put(1, 0, 10, 1), cas(2, 20, 30, 1, 2, false), cas(3, 20, 30, 1, 3, true), put(1, 22, 28, 1)],
    'a cond_put fails because a concurrent one won first',
  );
});

t.test('checkHistory checks keys apart', async (t) => {
  const ops = [
    put(1, 0, 10, 1),
    get(2, 20, 30, 1),
    { ...put(1, 0, 10, 1), key: 'other' },
    { ...get(2, 20, 30, 7), key: 'other' },
    { ...get(3, 0, 10, 1), key: 'third' },
  ];
  const verdict = checkHistory(ops);
  t.equal(verdict.ok, false);
  t.equal(verdict.keys, 3);
  t.equal(verdict.ops, 5);
  t.same(
    verdict.failures.map((f) => f.key),
    ['other', 'third'],
  );
  t.match(verdict.summary, /"other": not linearizable/);
  const good = checkHistory(ops.filter((o) => o.key === KEY));
  t.ok(good.ok);
  t.same(good.failures, []);
  t.ok(checkHistory([]).ok, 'an empty history');
});

t.test('a violation is explained', async (t) => {
  const stuck = get(3, 40, 50, 1);
  const verdict = checkKey([put(1, 0, 10, 1), put(2, 20, 30, 2), stuck]);
  if (verdict.ok) return t.fail('accepted');
  t.equal(verdict.prefix.length, 2, 'the two puts linearize');
  t.same(verdict.state, { v: 2, c: 0 });
  t.equal(verdict.stuck, stuck);
  t.same(verdict.pending, [stuck]);
  t.match(verdict.explanation, /get\(\) p3 \[\+40\.0, \+50\.0\]ms ok → \{v:1,c:0\}/);
  t.comment(verdict.explanation);
});

t.test('describeOp', async (t) => {
  t.equal(describeOp(put(1, 100, 110, 5), 100), 'put(5) p1 [+0.0, +10.0]ms ok');
  t.equal(describeOp(add(2, 100, 110, 3, 7), 100), 'add(3) p2 [+0.0, +10.0]ms ok → 7');
  t.equal(describeOp(cas(2, 100, 110, 3, 4, false), 100), 'cond_put(3→4) p2 [+0.0, +10.0]ms ok → false');
  t.equal(
    describeOp({ ...put(3, 0, 5, 1, 'info'), error: 'TIMEOUT' }),
    'put(1) p3 [+0.0, +5.0]ms info (TIMEOUT)',
  );
});

t.test('a malformed op throws', async (t) => {
  t.throws(() => checkKey([op(1, 'get', 0, 10, 'ok', { result: 3 })]), /malformed/);
  t.throws(() => checkKey([op(1, 'add', 0, 10, 'ok', { delta: 1 })]), /malformed/);
  t.throws(() => checkKey([put(1, 10, 0, 1)]), /ends before it starts/);
  t.throws(() => checkKey([put(1, 0, 10, 1), { ...put(1, 0, 10, 1), key: 'x' }]), /keys/);
});

t.test('running out of budget is unknown, not a violation', async (t) => {
  const ops = [put(1, 0, 10, 1), put(2, 0, 10, 2), get(3, 20, 30, 2), get(3, 40, 50, 2)];
  t.ok(checkKey(ops).ok, 'linearizable with the default budget');
  const verdict = checkKey(ops, { maxStates: 1 });
  t.notOk(verdict.ok);
  if (!verdict.ok) {
    t.equal(verdict.unknown, true);
    t.match(verdict.reason, /search budget exceeded/);
  }
  const history = checkHistory(ops, { maxStates: 1 });
  t.notOk(history.ok, 'checkHistory counts an unknown key as a failure');
  t.equal(history.failures[0]?.unknown, true);
});

// Random histories from a real execution: each process runs one operation at a time; each operation takes effect at
// one point of its interval (an info one possibly after its end, or never), and the results come from applying
// them in the order of those points, so the history is linearizable by construction.

const MAX_DURATION_MS = 10;
const MAX_GAP_MS = 2;
/** An info op may take effect up to this many of its durations after its start, i.e. well after its end. */
const INFO_LATENESS = 4;
/** Values are drawn from a small range, so that cond_puts both succeed and fail and reads are ambiguous. */
const VALUE_RANGE = 6;
const MAX_DELTA = 3;
/** In `unique` mode a cond_put expects one of this many most recently generated values. */
const RECENT_VALUES = 4;

interface GenOptions {
  count: number;
  /**
   * `few`: values from a small range, so that cond_puts both succeed and fail and reads are ambiguous (hard for the
   * search, kept small); `unique`: every put writes a fresh value, a cond_put expects a recently written one, adds
   * add 1, as the workload does.
   */
  values: 'few' | 'unique';
  processes: number;
  infoRate: number;
  failRate: number;
}

/** Mulberry32: a small seeded PRNG, so that a failing seed can be replayed. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
};

const generate = (seed: number, { count, values, processes, infoRate, failRate }: GenOptions): Op[] => {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const clocks = Array.from({ length: processes }, () => random() * MAX_DURATION_MS);
  const kinds: OpKind[] = ['put', 'get', 'cond_put', 'add'];
  const ops: Op[] = [];
  const points: { op: Op; at: number }[] = [];
  let fresh = 0;
  while (ops.length < count) {
    const p = clocks.indexOf(Math.min(...clocks));
    const start = clocks[p]!;
    const duration = random() * MAX_DURATION_MS;
    const end = start + duration;
    const kind = kinds[int(kinds.length)]!;
    const roll = random();
    const outcome: Outcome = roll < infoRate ? 'info' : roll < infoRate + failRate ? 'fail' : 'ok';
    const o: Op = { process: p, key: KEY, kind, start, end, outcome };
    const unique = values === 'unique';
    if (kind === 'put') o.value = unique ? ++fresh : int(VALUE_RANGE);
    if (kind === 'cond_put') {
      o.expect = unique ? Math.max(0, fresh - int(RECENT_VALUES)) : int(VALUE_RANGE);
      o.value = unique ? ++fresh : int(VALUE_RANGE);
    }
    if (kind === 'add') o.delta = unique ? 1 : 1 + int(MAX_DELTA);
    if (outcome !== 'ok') o.error = outcome === 'info' ? 'TIMEOUT' : 'UNAVAILABLE';
    ops.push(o);
    if (outcome === 'ok') points.push({ op: o, at: start + random() * duration });
    else if (outcome === 'info' && random() < 0.5) points.push({ op: o, at: start + random() * duration * INFO_LATENESS });
    clocks[p] = end + random() * MAX_GAP_MS;
  }
  points.sort((a, b) => a.at - b.at);
  const state: KeyState = { v: null, c: 0 };
  for (const { op: o } of points) {
    let result: Op['result'] = null;
    switch (o.kind) {
      case 'put':
        state.v = o.value!;
        break;
      case 'get':
        result = { ...state };
        break;
      case 'cond_put':
        result = state.v === o.expect;
        if (result) state.v = o.value!;
        break;
      case 'add':
        state.c += o.delta!;
        result = state.c;
        break;
    }
    if (o.outcome === 'ok') o.result = result;
  }
  return ops;
};

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const RANDOM = { count: 300, values: 'few', processes: 6, infoRate: 0.05, failRate: 0.05 } as const;

t.test('random histories from a sequential execution are accepted', async (t) => {
  for (const seed of SEEDS) {
    const ops = generate(seed, RANDOM);
    const verdict = checkKey(ops);
    t.ok(verdict.ok, `seed ${seed}: ${verdict.explored} configurations`, verdict.ok ? {} : { explanation: verdict.explanation });
  }
});

t.test('the same histories with a read of a value never written are rejected', async (t) => {
  const NEVER_WRITTEN = VALUE_RANGE + 1;
  for (const seed of SEEDS) {
    const ops = generate(seed, RANDOM);
    const gets = ops.filter((o) => o.kind === 'get' && o.outcome === 'ok');
    const corrupted = gets[Math.floor(gets.length / 2)]!;
    corrupted.result = { v: NEVER_WRITTEN, c: (corrupted.result as KeyState).c };
    const verdict = checkKey(ops);
    t.notOk(verdict.ok, `seed ${seed}: rejected after ${verdict.explored} configurations`);
    if (!verdict.ok) {
      t.equal(verdict.unknown, false, `seed ${seed}: a violation, not an unknown`);
      t.equal(verdict.stuck, corrupted, `seed ${seed}: stuck at the corrupted get`);
    }
  }
});

t.test('the same histories with a read of an overwritten value are rejected', async (t) => {
  for (const seed of SEEDS) {
    const ops = generate(seed, { ...RANDOM, values: 'unique' });
    const puts = ops.filter((o) => o.kind === 'put' && o.outcome === 'ok');
    const first = puts[0]!;
    // Values are unique, so once a later put has returned nothing can bring the first value back.
    const overwrite = puts.find((o) => o.start > first.end)!;
    const read = ops.find((o) => o.kind === 'get' && o.outcome === 'ok' && o.start > overwrite.end)!;
    read.result = { v: first.value!, c: (read.result as KeyState).c };
    const verdict = checkKey(ops);
    t.notOk(verdict.ok, `seed ${seed}: rejected after ${verdict.explored} configurations`);
    if (!verdict.ok) t.equal(verdict.unknown, false, `seed ${seed}: a violation, not an unknown`);
  }
});

t.test('the same histories with an add result shifted are rejected', async (t) => {
  for (const seed of SEEDS) {
    const ops = generate(seed, { ...RANDOM, infoRate: 0 });
    const adds = ops.filter((o) => o.kind === 'add' && o.outcome === 'ok');
    // The last add's result is the final counter: one more than it cannot be explained without another add after it.
    const last = adds.reduce((a, b) => ((b.result as number) > (a.result as number) ? b : a));
    last.result = (last.result as number) + 1;
    const verdict = checkKey(ops);
    t.notOk(verdict.ok, `seed ${seed}: rejected after ${verdict.explored} configurations`);
  }
});

t.test('time to check a 2,000-op, 16-process history (measured, not asserted)', async (t) => {
  const ops = generate(42, { count: 2000, values: 'unique', processes: 16, infoRate: 0.02, failRate: 0.02 });
  const info = ops.filter((o) => o.outcome === 'info').length;
  const began = performance.now();
  const verdict = checkKey(ops);
  const ms = performance.now() - began;
  t.ok(verdict.ok, 'accepted', verdict.ok ? {} : { explanation: verdict.explanation });
  t.comment(`2,000 ops (${info} info), 16 processes: ${ms.toFixed(1)} ms, ${verdict.explored} configurations`);

  // As above: a read in the middle of the history of a value overwritten before it started.
  const puts = ops.filter((o) => o.kind === 'put' && o.outcome === 'ok');
  const old = puts[Math.floor(puts.length / 2)]!;
  const overwrite = puts.find((o) => o.start > old.end)!;
  const corrupted = ops.find((o) => o.kind === 'get' && o.outcome === 'ok' && o.start > overwrite.end)!;
  corrupted.result = { v: old.value!, c: (corrupted.result as KeyState).c };
  const beganBad = performance.now();
  const bad = checkKey(ops);
  const msBad = performance.now() - beganBad;
  t.notOk(bad.ok, 'rejected with a read in the middle corrupted');
  if (!bad.ok) t.equal(bad.unknown, false, 'a violation, not an unknown');
  t.comment(
    `the same, corrupted: ${msBad.toFixed(1)} ms, ${bad.explored} configurations` +
      (bad.ok ? '' : `, ${bad.unknown ? 'unknown' : 'violation'}`),
  );
});

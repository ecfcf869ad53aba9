// A linearizability checker for the histories in history.ts, one key at a time.
//
// Every operation touches one key, so a history is linearizable iff each key's sub-history is (P-compositionality),
// and each key is checked on its own against the register model of history.ts: state `{ v, c }`, initially
// `{ v: null, c: 0 }`.
//
// The search is Wing & Gong's, with Lowe's just-in-time linearization and memoization, as Porcupine and Knossos do
// it: the invocations and returns are laid out in time order in a doubly linked list; the search walks it,
// linearizing (and unlinking) any pending operation whose invocation it has passed when the model, stepped by it,
// gives the recorded result, and backtracks when it reaches the return of an operation it has not linearized yet.
// A configuration (the set of linearized operations plus the model state) that was explored once is never explored
// again. `fail` operations took no effect and are left out; `info` operations have no return (they may take effect
// at any time after their invocation, or never), accept any result, and need not be linearized: the key is
// linearizable as soon as every `ok` operation is. An `info` get has no effect and is left out too.
//
// On top of that, the register model allows three prunings that keep the search small at the concurrency and
// info-op counts of the workload (each explained where it is made): a configuration where some pending operation
// can never be linearized any more is cut at once; values nobody reads are merged into one; and an `info`
// operation is only tried when a pending operation needs its effect, and only the earliest of interchangeable ones.
// Exploring more than MAX_EXPLORED_STATES configurations gives up with an `unknown` verdict, not a violation.

import type { KeyState, Op } from './history.js';

/** How many configurations one key's search may explore before it gives up and says it does not know. */
export const MAX_EXPLORED_STATES = 5_000_000;

/** How many operations of the longest linearizable prefix an explanation prints (the last ones). */
const EXPLAIN_PREFIX_TAIL = 12;
/** How many pending operations an explanation prints. */
const EXPLAIN_PENDING_MAX = 24;
/** Decimals of the relative milliseconds in describeOp. */
const TIME_DECIMALS = 1;

/** What the search writes for a value nobody reads or expects; no op's value can be it (they are finite). */
const UNOBSERVED = -Infinity;

const BITS_PER_WORD = 32;
const FULL_WORD = 0xffffffff;
const HALF_WORD_BITS = 16;
const HALF_WORD_MASK = 0xffff;

export interface CheckOptions {
  /** Overrides MAX_EXPLORED_STATES (tests pass a tiny one to reach the unknown verdict). */
  maxStates?: number;
}

export interface KeyVerdictOk {
  ok: true;
  key: string;
  /** The operations given. */
  ops: number;
  /** The operations searched: the given ones less `fail` ones and `info` gets. */
  checked: number;
  /** Configurations explored. */
  explored: number;
}

export interface KeyVerdictBad {
  ok: false;
  /** True when the search ran out of budget: neither a linearization nor a proof that there is none. */
  unknown: boolean;
  key: string;
  ops: number;
  checked: number;
  explored: number;
  reason: string;
  /** The longest linearizable prefix the search found, in linearization order. */
  prefix: Op[];
  /** The model state after that prefix. */
  state: KeyState;
  /** The `ok` operation that returned before the search could linearize it after that prefix. */
  stuck: Op | null;
  /** The operations that could have been linearized next at that point (invoked, not yet linearized). */
  pending: Op[];
  /** All of the above, printed for a human. */
  explanation: string;
}

export type KeyVerdict = KeyVerdictOk | KeyVerdictBad;

export interface HistoryVerdict {
  ok: boolean;
  keys: number;
  ops: number;
  checked: number;
  explored: number;
  /** The keys that are not linearizable, or whose search ran out of budget (`unknown`). */
  failures: KeyVerdictBad[];
  /** One line per key in `failures`, then their explanations. */
  summary: string;
}

const fmtTime = (ms: number): string => (ms === Infinity ? '∞' : `+${ms.toFixed(TIME_DECIMALS)}`);

const fmtState = (s: KeyState): string => `{v:${s.v === null ? 'null' : s.v},c:${s.c}}`;

const fmtResult = (r: Op['result']): string => {
  if (r === undefined) return '?';
  if (r === null || typeof r !== 'object') return String(r);
  return fmtState(r);
};

/** One line for an operation: kind and arguments, process, interval relative to `origin`, outcome and result. */
export function describeOp(op: Op, origin = 0): string {
  let call: string;
  switch (op.kind) {
    case 'put':
      call = `put(${op.value})`;
      break;
    case 'get':
      call = 'get()';
      break;
    case 'cond_put':
      call = `cond_put(${op.expect}→${op.value})`;
      break;
    case 'add':
      call = `add(${op.delta})`;
      break;
  }
  const interval = `[${fmtTime(op.start - origin)}, ${fmtTime(op.end - origin)}]ms`;
  let outcome: string;
  if (op.outcome === 'ok') outcome = op.kind === 'put' ? 'ok' : `ok → ${fmtResult(op.result)}`;
  else outcome = op.error === undefined ? op.outcome : `${op.outcome} (${op.error})`;
  return `${call} p${op.process} ${interval} ${outcome}`;
}

// The model step of each operation is encoded as a code plus numeric arguments in typed arrays, so the search's
// inner loop is a switch over plain numbers rather than a call through a closure with an allocated result.
const enum Step {
  Put, // v = a
  GetCheck, // accept iff v === resultV and c === resultC
  CondTrue, // accept iff v === expect; v = value
  CondFalse, // accept iff v !== expect
  CondAny, // info cond_put: v = value if v === expect
  AddCheck, // accept iff c + delta === result; c = result
  AddAny, // info add: c += delta
}

const malformed = (op: Op, why: string): Error => new TypeError(`malformed op (${why}): ${describeOp(op)}`);

const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Checks one key's operations (all must be on the same key) for linearizability. */
export function checkKey(ops: Op[], options: CheckOptions = {}): KeyVerdict {
  const maxStates = options.maxStates ?? MAX_EXPLORED_STATES;
  const key = ops[0]?.key ?? '';
  for (const op of ops) if (op.key !== key) throw new TypeError(`checkKey got keys ${key} and ${op.key}`);

  const origin = ops.reduce((m, op) => Math.min(m, op.start), Infinity);
  const say = (op: Op): string => describeOp(op, origin);

  // Ordered by invocation, so that `info` operations of one class are invoked in index order (see `classOf`).
  const considered = ops
    .map((op, i) => ({ op, i }))
    .filter(({ op }) => op.outcome === 'ok' || (op.outcome === 'info' && op.kind !== 'get'))
    .sort((a, b) => a.op.start - b.op.start || a.i - b.i)
    .map(({ op }) => op);
  const n = considered.length;

  // The model's future depends on `v` only through comparisons with what gets read and what cond_puts expect, so
  // every other value is written as one UNOBSERVED value: states that differ only in such a value are one memo
  // entry, and indeterminate writes of such values (their classes below) are interchangeable.
  const observed = new Set<number>();
  for (const op of considered) {
    if (op.kind === 'cond_put' && isNumber(op.expect)) observed.add(op.expect);
    if (op.kind === 'get' && typeof op.result === 'object' && op.result !== null && isNumber(op.result.v))
      observed.add(op.result.v);
  }
  const written = (x: number): number => (observed.has(x) ? x : UNOBSERVED);

  const code = new Uint8Array(n);
  // A put's or cond_put's new v, a get's v (NaN for null), an add's delta.
  const argA = new Float64Array(n);
  // A cond_put's expect, a get's c, an add's result.
  const argB = new Float64Array(n);
  const getNull = new Uint8Array(n);
  const isInfo = new Uint8Array(n);
  // Bit position of each operation in its own bitset: `ok` and `info` operations are kept in separate ones, so the
  // `ok` one stays dense (all ones up to the few operations in flight) and both have short memo keys.
  const slot = new Int32Array(n);
  let nOk = 0;
  let nInfo = 0;

  // Pending `info` operations with the same effect are interchangeable: only the earliest-invoked unlinearized one of
  // a class is ever tried, which keeps the search from enumerating which of, say, twenty timed-out `add(1)`s happened.
  const classOf = new Int32Array(n).fill(-1);
  const classIds = new Map<string, number>();
  const classMembers: number[][] = [];

  for (let i = 0; i < n; i++) {
    const op = considered[i]!;
    const info = op.outcome === 'info';
    isInfo[i] = info ? 1 : 0;
    slot[i] = info ? nInfo++ : nOk++;
    let signature = '';
    switch (op.kind) {
      case 'put':
        if (!isNumber(op.value)) throw malformed(op, 'put without a value');
        code[i] = Step.Put;
        argA[i] = written(op.value);
        signature = `put ${argA[i]}`;
        break;
      case 'get': {
        const r = op.result;
        if (typeof r !== 'object' || r === null || !isNumber(r.c) || !(r.v === null || isNumber(r.v)))
          throw malformed(op, 'get without a {v, c} result');
        code[i] = Step.GetCheck;
        getNull[i] = r.v === null ? 1 : 0;
        argA[i] = r.v ?? NaN;
        argB[i] = r.c;
        break;
      }
      case 'cond_put':
        if (!isNumber(op.value) || !isNumber(op.expect)) throw malformed(op, 'cond_put without expect and value');
        argA[i] = written(op.value);
        argB[i] = op.expect;
        if (info) code[i] = Step.CondAny;
        else if (op.result === true) code[i] = Step.CondTrue;
        else if (op.result === false) code[i] = Step.CondFalse;
        else throw malformed(op, 'cond_put without a boolean result');
        signature = `cond_put ${op.expect} ${argA[i]}`;
        break;
      case 'add':
        if (!isNumber(op.delta)) throw malformed(op, 'add without a delta');
        argA[i] = op.delta;
        if (info) code[i] = Step.AddAny;
        else if (isNumber(op.result)) {
          code[i] = Step.AddCheck;
          argB[i] = op.result;
        } else throw malformed(op, 'add without a numeric result');
        signature = `add ${op.delta}`;
        break;
    }
    if (info) {
      let id = classIds.get(signature);
      if (id === undefined) {
        id = classMembers.length;
        classIds.set(signature, id);
        classMembers.push([]);
      }
      classOf[i] = id;
      classMembers[id]!.push(i);
    }
  }
  // How many members of each class are linearized: by the rule above they are always the first ones.
  const classDone = new Int32Array(classMembers.length);

  // Dead configurations are cut as soon as they arise rather than when the search next reaches a return: a pending
  // `ok` operation that needs `v` to be x cannot be linearized any more if `v` is not x and no unlinearized operation
  // writes x (always so for a read of null, and the common case with the workload's unique values once x has been
  // overwritten); with no negative delta `c` never decreases, so an operation that needs a smaller `c` is dead too.
  // Without this the search explores every order of the other pending operations up to the doomed one's return.
  // Value ids start at 1: 0 stands for null.
  const NULL_ID = 0;
  const valueIds = new Map<number, number>();
  const valueId = (x: number): number => {
    let id = valueIds.get(x);
    if (id === undefined) valueIds.set(x, (id = valueIds.size + 1));
    return id;
  };
  const writes = new Int32Array(n).fill(-1);
  const needsV = new Int32Array(n).fill(-1);
  const needsC = new Float64Array(n).fill(NaN);
  let monotonic = true;
  for (let i = 0; i < n; i++) {
    switch (code[i] as Step) {
      case Step.Put:
      case Step.CondTrue:
      case Step.CondAny:
        writes[i] = valueId(argA[i]!);
        break;
      case Step.AddAny:
      case Step.AddCheck:
        if (argA[i]! < 0) monotonic = false;
        break;
      default:
        break;
    }
  }
  for (let i = 0; i < n; i++) {
    switch (code[i] as Step) {
      case Step.GetCheck:
        needsV[i] = getNull[i] ? NULL_ID : valueId(argA[i]!);
        needsC[i] = argB[i]!;
        break;
      case Step.CondTrue:
        needsV[i] = valueId(argB[i]!);
        break;
      case Step.AddCheck:
        needsC[i] = argB[i]! - argA[i]!;
        break;
      default:
        break;
    }
  }
  // Unlinearized writers of each value; none ever writes null.
  const writers = new Int32Array(valueIds.size + 1);
  for (let i = 0; i < n; i++) if (writes[i]! >= 0) writers[writes[i]!]!++;

  // Events: an invocation per operation, a return per `ok` one. Ties go invocations first, so that an operation
  // that starts exactly when another ends counts as concurrent with it (the lenient reading of equal clocks).
  const evOp: number[] = [];
  const evCall: boolean[] = [];
  const evTime: number[] = [];
  for (let i = 0; i < n; i++) {
    const op = considered[i]!;
    if (!(op.end >= op.start) && !isInfo[i]) throw malformed(op, 'ends before it starts');
    evOp.push(i);
    evCall.push(true);
    evTime.push(op.start);
    if (!isInfo[i]) {
      evOp.push(i);
      evCall.push(false);
      evTime.push(op.end);
    }
  }
  const order = evOp.map((_, e) => e);
  order.sort(
    (a, b) =>
      evTime[a]! - evTime[b]! || Number(evCall[b]) - Number(evCall[a]) || evOp[a]! - evOp[b]! || a - b,
  );
  const nEv = order.length;
  const HEAD = nEv;
  const TAIL = nEv + 1;
  const next = new Int32Array(nEv + 2);
  const prev = new Int32Array(nEv + 2);
  const eOp = new Int32Array(nEv);
  const eCall = new Uint8Array(nEv);
  const callEv = new Int32Array(n);
  const retEv = new Int32Array(n).fill(-1);
  for (let k = 0; k < nEv; k++) {
    const e = order[k]!;
    const i = evOp[e]!;
    eOp[k] = i;
    eCall[k] = evCall[e] ? 1 : 0;
    if (evCall[e]) callEv[i] = k;
    else retEv[i] = k;
    next[k] = k + 1;
    prev[k] = k - 1;
  }
  next[HEAD] = TAIL;
  prev[TAIL] = HEAD;
  if (nEv > 0) {
    next[HEAD] = 0;
    prev[0] = HEAD;
    next[nEv - 1] = TAIL;
    prev[TAIL] = nEv - 1;
  }

  // Unlinking in DFS order and relinking in reverse (dancing links) needs no other bookkeeping.
  const unlink = (e: number): void => {
    next[prev[e]!] = next[e]!;
    prev[next[e]!] = prev[e]!;
  };
  const relink = (e: number): void => {
    next[prev[e]!] = e;
    prev[next[e]!] = e;
  };
  const lift = (i: number): void => {
    if (writes[i]! >= 0) writers[writes[i]!]!--;
    unlink(callEv[i]!);
    if (retEv[i]! >= 0) unlink(retEv[i]!);
  };
  const unlift = (i: number): void => {
    if (writes[i]! >= 0) writers[writes[i]!]!++;
    if (retEv[i]! >= 0) relink(retEv[i]!);
    relink(callEv[i]!);
  };

  const okBits = new Uint32Array(Math.ceil(nOk / BITS_PER_WORD));
  const infoBits = new Uint32Array(Math.ceil(nInfo / BITS_PER_WORD));
  const flip = (i: number): void => {
    const bits = isInfo[i] ? infoBits : okBits;
    const s = slot[i]!;
    bits[Math.floor(s / BITS_PER_WORD)]! ^= 1 << s % BITS_PER_WORD;
  };
  // The `ok` bitset is all ones up to the oldest operation in flight and all zeros past the newest, so only the
  // words between are spelled out; every word is two UTF-16 code units, which makes the key short and exact.
  const pushWord = (parts: number[], w: number): void => {
    parts.push(w >>> HALF_WORD_BITS, w & HALF_WORD_MASK);
  };
  const parts: number[] = [];
  const memoKey = (v: number | null, c: number): string => {
    parts.length = 0;
    let lo = 0;
    while (lo < okBits.length && okBits[lo] === FULL_WORD) lo++;
    let hi = okBits.length;
    while (hi > lo && okBits[hi - 1] === 0) hi--;
    for (let w = lo; w < hi; w++) pushWord(parts, okBits[w]!);
    for (let w = 0; w < infoBits.length; w++) pushWord(parts, infoBits[w]!);
    return `${lo}:${String.fromCharCode(...parts)}:${v}:${c}`;
  };

  const seen = new Set<string>();
  let explored = 0;

  // The model state, and the stack of linearized operations with the state before each.
  let v: number | null = null;
  let c = 0;
  let depth = 0;
  const stackOp = new Int32Array(n);
  const stackV: (number | null)[] = new Array<number | null>(n).fill(null);
  const stackC = new Float64Array(n);
  let remainingOk = nOk;

  // The deepest dead end, for the explanation.
  let bestOk = -1;
  let bestPrefix: number[] = [];
  let bestStuck = -1;
  let bestPending: number[] = [];

  const pendingNow = (): number[] => {
    const out: number[] = [];
    for (let e = next[HEAD]!; e !== TAIL && eCall[e]; e = next[e]!) out.push(eOp[e]!);
    return out;
  };
  const firstReturn = (): number => {
    let e = next[HEAD]!;
    while (e !== TAIL && eCall[e]) e = next[e]!;
    return e === TAIL ? -1 : eOp[e]!;
  };
  const recordDeadEnd = (): void => {
    const linearizedOk = nOk - remainingOk;
    if (linearizedOk <= bestOk) return;
    bestOk = linearizedOk;
    bestPrefix = Array.from(stackOp.subarray(0, depth));
    bestStuck = doomed >= 0 ? doomed : firstReturn();
    bestPending = pendingNow();
  };

  const verdictBad = (unknown: boolean, reason: string): KeyVerdictBad => {
    const prefix = bestPrefix.map((i) => considered[i]!);
    // Replayed with the ops' own values, which the search may have replaced with UNOBSERVED.
    const bestState: KeyState = { v: null, c: 0 };
    for (const op of prefix) {
      if (op.kind === 'put' || (op.kind === 'cond_put' && bestState.v === op.expect)) bestState.v = op.value!;
      if (op.kind === 'add') bestState.c += op.delta!;
    }
    const stuck = bestStuck >= 0 ? considered[bestStuck]! : null;
    const pending = bestPending.map((i) => considered[i]!);
    const lines = [
      `key ${JSON.stringify(key)}: ${reason} (${n} of ${ops.length} ops checked, ${explored} configurations explored)`,
      `  longest linearizable prefix: ${prefix.length} ops (${Math.max(bestOk, 0)} of ${nOk} ok ops), ` +
        `leaving the key at ${fmtState(bestState)}`,
    ];
    if (prefix.length > EXPLAIN_PREFIX_TAIL) lines.push(`    … ${prefix.length - EXPLAIN_PREFIX_TAIL} earlier ops`);
    for (const op of prefix.slice(-EXPLAIN_PREFIX_TAIL)) lines.push(`    ${say(op)}`);
    if (stuck) lines.push('  then this op cannot be linearized, now or before it returns:', `    ${say(stuck)}`);
    lines.push(`  pending (invoked, not linearized) at that point: ${pending.length}`);
    for (const op of pending.slice(0, EXPLAIN_PENDING_MAX)) lines.push(`    ${say(op)}`);
    if (pending.length > EXPLAIN_PENDING_MAX) lines.push(`    … ${pending.length - EXPLAIN_PENDING_MAX} more`);
    return {
      ok: false,
      unknown,
      key,
      ops: ops.length,
      checked: n,
      explored,
      reason,
      prefix,
      state: bestState,
      stuck,
      pending,
      explanation: lines.join('\n'),
    };
  };

  // Candidates at each configuration are tried in two groups: the pending `ok` operations first, then the pending
  // `info` ones, so that an indeterminate operation is only made to take effect when nothing else explains what
  // follows. Each depth's candidates sit in one pool, [frameStart, frameEnd), the next to try at framePos.
  const pool: number[] = [];
  const frameStart = new Int32Array(n + 1);
  const frameEnd = new Int32Array(n + 1);
  const framePos = new Int32Array(n + 1);
  const infoCands: number[] = [];
  // The pending `ok` operation found dead in the current configuration, or -1.
  let doomed = -1;
  const isDoomed = (i: number): boolean => {
    const needV = needsV[i]!;
    if (needV >= 0 && writers[needV] === 0) {
      const have = needV === NULL_ID ? v === null : v === (code[i] === Step.GetCheck ? argA[i] : argB[i]);
      if (!have) return true;
    }
    return monotonic && c > needsC[i]!;
  };
  // An `info` operation is only tried when some pending operation needs its effect: any linearization can be
  // rewritten so that each indeterminate operation it keeps comes right before an operation (or a chain of
  // indeterminate cond_puts leading to one) that would not accept, or not take effect, without it: an
  // indeterminate operation can always be moved later (it has no return) past operations that ignore what it
  // changes, and dropped if what it wrote is overwritten unread or if it changes nothing. Those needing operations
  // are invoked already (only `info` ones, which have no return, come between), hence pending now.
  const neededV: number[] = [];
  const fillCandidates = (): void => {
    frameStart[depth] = pool.length;
    frameEnd[depth] = pool.length;
    framePos[depth] = pool.length;
    infoCands.length = 0;
    neededV.length = 0;
    let needsOtherV = false;
    let needsOtherC = false;
    doomed = -1;
    for (let e = next[HEAD]!; e !== TAIL && eCall[e]; e = next[e]!) {
      const i = eOp[e]!;
      switch (code[i] as Step) {
        case Step.GetCheck:
          // Nothing writes null, so a read of null needs no writer.
          if (!getNull[i] && v !== argA[i]) neededV.push(argA[i]!);
          if (c !== argB[i]) needsOtherC = true;
          break;
        case Step.CondTrue:
        case Step.CondAny:
          if (v !== argB[i]) neededV.push(argB[i]!);
          break;
        case Step.CondFalse:
          if (v === argB[i]) needsOtherV = true;
          break;
        case Step.AddCheck:
          if (c !== needsC[i]) needsOtherC = true;
          break;
        default:
          break;
      }
      if (isInfo[i]) {
        if (classMembers[classOf[i]!]![classDone[classOf[i]!]!] === i) infoCands.push(i);
      } else if (isDoomed(i)) {
        doomed = i;
        pool.length = frameStart[depth]!;
        return;
      } else pool.push(i);
    }
    for (const i of infoCands) {
      let useful = true;
      const op = code[i] as Step;
      if (op === Step.AddAny) useful = needsOtherC && argA[i] !== 0;
      else if (op === Step.Put || op === Step.CondAny) {
        // A cond_put whose condition fails now changes nothing; one whose condition holds writes like a put.
        const writes = op === Step.Put || v === argB[i];
        useful = writes && v !== argA[i] && (needsOtherV || neededV.includes(argA[i]!));
      }
      if (useful) pool.push(i);
    }
    frameEnd[depth] = pool.length;
    framePos[depth] = frameStart[depth]!;
  };

  // A read of a value that nothing wrote before it returned needs no search, and proving it by search could take
  // the whole budget when the read comes late in a long history.
  const firstWrite = new Float64Array(valueIds.size + 1).fill(Infinity);
  for (let i = 0; i < n; i++)
    if (writes[i]! >= 0) firstWrite[writes[i]!] = Math.min(firstWrite[writes[i]!]!, considered[i]!.start);
  for (let i = 0; i < n; i++) {
    const needV = needsV[i]!;
    if (needV >= 0 && needV !== NULL_ID && firstWrite[needV]! > considered[i]!.end) {
      bestOk = 0;
      bestStuck = i;
      return verdictBad(false, 'not linearizable: an op needs a value that nothing wrote before it returned');
    }
  }

  // With no `ok` operation (only `info` and `fail` ones, or none) there is nothing to linearize.
  if (remainingOk === 0) return { ok: true, key, ops: ops.length, checked: n, explored };
  fillCandidates();
  for (;;) {
    if (framePos[depth] === frameEnd[depth]) {
      recordDeadEnd();
      doomed = -1;
      if (depth === 0) return verdictBad(false, 'not linearizable');
      pool.length = frameStart[depth]!;
      const i = stackOp[--depth]!;
      v = stackV[depth] ?? null;
      c = stackC[depth]!;
      unlift(i);
      flip(i);
      if (isInfo[i]) classDone[classOf[i]!]!--;
      else remainingOk++;
      continue;
    }
    const i = pool[framePos[depth]!++]!;
    let nv: number | null = v;
    let nc: number = c;
    let accept = true;
    const a = argA[i]!;
    const b = argB[i]!;
    switch (code[i] as Step) {
      case Step.Put:
        nv = a;
        break;
      case Step.GetCheck:
        accept = (getNull[i] ? v === null : v === a) && c === b;
        break;
      case Step.CondTrue:
        accept = v === b;
        nv = a;
        break;
      case Step.CondFalse:
        accept = v !== b;
        break;
      case Step.CondAny:
        if (v === b) nv = a;
        break;
      case Step.AddCheck:
        accept = c + a === b;
        nc = b;
        break;
      case Step.AddAny:
        nc = c + a;
        break;
    }
    if (!accept) continue;
    flip(i);
    const k = memoKey(nv, nc);
    if (seen.has(k)) {
      flip(i);
      continue;
    }
    seen.add(k);
    if (++explored > maxStates) {
      flip(i);
      recordDeadEnd();
      return verdictBad(true, `search budget exceeded (${maxStates} configurations): unknown`);
    }
    stackOp[depth] = i;
    stackV[depth] = v;
    stackC[depth] = c;
    depth++;
    v = nv;
    c = nc;
    lift(i);
    if (isInfo[i]) classDone[classOf[i]!]!++;
    else remainingOk--;
    if (remainingOk === 0) return { ok: true, key, ops: ops.length, checked: n, explored };
    fillCandidates();
  }
}

/** Checks every key of a history; the history is linearizable iff every key is. */
export function checkHistory(ops: Op[], options: CheckOptions = {}): HistoryVerdict {
  const byKey = new Map<string, Op[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  const failures: KeyVerdictBad[] = [];
  let checked = 0;
  let explored = 0;
  for (const keyOps of byKey.values()) {
    const verdict = checkKey(keyOps, options);
    checked += verdict.checked;
    explored += verdict.explored;
    if (!verdict.ok) failures.push(verdict);
  }
  const summary = [
    `${byKey.size} keys, ${ops.length} ops (${checked} checked): ` +
      (failures.length === 0 ? 'linearizable' : `${failures.length} keys failed`),
    ...failures.map((f) => `  ${JSON.stringify(f.key)}: ${f.reason}`),
    ...failures.map((f) => f.explanation),
  ].join('\n');
  return { ok: failures.length === 0, keys: byKey.size, ops: ops.length, checked, explored, failures, summary };
}

// The shape of a Jepsen-style history: every operation a client process ran on one key, with when it was invoked,
// when it completed, and how. Written by the workload's client processes (one JSON line per operation), read by
// the linearizability checker.
//
// The model of one key is a register with a tag and a counter: the stored value is `{ v, c }`. `put` sets `v`
// (kv's put merges attributes, so `c` is kept), `cond_put` sets `v` to `value` only if `v` is `expect` now,
// `add` adds `delta` to `c` (an absent key or attribute counts as 0) and returns the new `c`, `get` reads both.
// An absent key reads as `{ v: null, c: 0 }`.

export type OpKind = 'put' | 'get' | 'cond_put' | 'add';

/**
 * How an operation ended, as the client saw it:
 * - `ok`: it took effect once, between `start` and `end`, with `result`;
 * - `fail`: it definitely took no effect (refused before it could run: UNAVAILABLE, READ_ONLY, BAD_REQUEST...);
 * - `info`: indeterminate (TIMEOUT, a dropped connection): it may have taken effect once, at any time after
 *   `start` (even after `end`), or never.
 */
export type Outcome = 'ok' | 'fail' | 'info';

export interface KeyState {
  v: number | null;
  c: number;
}

export interface Op {
  /** The client process (and its logical thread) that ran it: one process runs one operation at a time. */
  process: number;
  key: string;
  kind: OpKind;
  /** put: the new `v`; cond_put: the new `v` if the condition holds. */
  value?: number;
  /** cond_put: the `v` it expects. */
  expect?: number;
  /** add: the amount added to `c`. */
  delta?: number;
  /** Wall-clock milliseconds (`performance.timeOrigin + performance.now()`), comparable across processes on one host. */
  start: number;
  end: number;
  outcome: Outcome;
  /**
   * For `ok` operations: get → the state read; add → the new `c`; cond_put → true if it applied, false if it
   * answered CONDITION_FAILED; put → null.
   */
  result?: KeyState | number | boolean | null;
  /** The error code, for `fail` and `info`. */
  error?: string;
}

// The closed-loop load generator of one generator process: `concurrency` workers, each with one operation
// outstanding at a time, every operation's latency (performance.now(), ms) recorded; a write puts the key's own
// value (Values.of). A failed operation is counted by its error code, never thrown; a read must return the
// value's length. Every phase is bounded: a system that stops answering fails the phase instead of hanging the
// run. The parent (generators.ts) runs one of these in each generator process and merges what they return.
import { performance } from 'node:perf_hooks';
import { progress, withTimeout } from '../cluster.js';
import { Latencies } from '../stats.js';
import { firstErrorsMax, type GeneratorRun } from './phase-run.js';
import { errorCode, type SystemClient } from './system.js';
import type { KeyChooser, Values, Workload } from './workload.js';

/** How long the workers may take to finish their last operations once a phase is over. */
const drainTimeoutMs = 30_000;
/** How often the load phase prints how far it got. */
const loadProgressMs = 5_000;

/** A phase's result before the generator adds its CPU. */
export type DriverRun = Omit<GeneratorRun, 'cpuSeconds'>;

class Recorder {
  readonly reads = new Latencies();
  readonly updates = new Latencies();
  readonly errors = new Map<string, number>();
  readonly firstErrors: string[] = [];
  readonly perSecond: number[] = [];
  lastDone: number;
  ops = 0;

  constructor(readonly started: number) {
    this.lastDone = started;
  }

  done(t0: number, t1: number, read: boolean): void {
    (read ? this.reads : this.updates).add(t1 - t0);
    this.ops++;
    this.lastDone = t1;
    const second = Math.floor((t1 - this.started) / 1000);
    while (this.perSecond.length <= second) this.perSecond.push(0);
    this.perSecond[second]!++;
  }

  fail(what: string, code: string, message: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    if (this.firstErrors.length < firstErrorsMax) this.firstErrors.push(`${what}: ${code}: ${message.slice(0, 300)}`);
  }

  result(wholeSeconds?: number): DriverRun {
    return {
      startedAtMs: performance.timeOrigin + this.started,
      seconds: Math.max(1e-3, (this.lastDone - this.started) / 1000),
      reads: this.reads.samples(),
      updates: this.updates.samples(),
      errors: [...this.errors],
      firstErrors: this.firstErrors,
      perSecond: wholeSeconds === undefined ? this.perSecond : this.perSecond.slice(0, wholeSeconds),
    };
  }
}

/** Lets the event loop run I/O after a failure, so that a system failing at once does not spin the loop. */
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Waits for the workers: the phase's own length (phaseMs, after which no worker starts an operation) plus
 * drainTimeoutMs for the last operations; throws, saying how many operations are stuck, after that.
 */
async function drain(workers: Array<Promise<void>>, phaseMs: number, inflight: () => number, what: string): Promise<void> {
  if ((await withTimeout(Promise.all(workers).then(() => true), phaseMs + drainTimeoutMs)) === undefined) {
    throw new Error(`${what}: ${inflight()} operation(s) still unanswered ${drainTimeoutMs / 1000} s after the phase ended`);
  }
}

/**
 * The load phase: keys[from, to) put once each, in order, `concurrency` at a time (each worker takes the next
 * key). Fails when it has not finished within timeoutMs. `name` names the system in messages.
 */
export async function loadPhase(
  name: string,
  client: SystemClient,
  keys: readonly string[],
  range: { from: number; to: number },
  values: Values,
  concurrency: number,
  timeoutMs: number,
): Promise<DriverRun> {
  const started = performance.now();
  const recorder = new Recorder(started);
  const deadline = started + timeoutMs;
  const count = range.to - range.from;
  let next = range.from;
  let inflight = 0;
  let timedOut = false;
  let lastReport = started;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= range.to) return;
      const t0 = performance.now();
      if (t0 > deadline) {
        timedOut = true;
        return;
      }
      const key = keys[i]!;
      inflight++;
      try {
        await client.put(key, values.of(i));
        recorder.done(t0, performance.now(), false);
      } catch (error) {
        recorder.fail(`put ${key}`, errorCode(error), (error as Error).message);
        await yieldToIo();
      } finally {
        inflight--;
      }
      if (recorder.lastDone - lastReport > loadProgressMs) {
        lastReport = recorder.lastDone;
        progress(`${name}: loaded ${recorder.ops}/${count} (${Math.round(recorder.ops / ((lastReport - started) / 1000))} keys/s)`);
      }
    }
  };
  const workers = Array.from({ length: Math.min(concurrency, count) }, () => worker());
  await drain(workers, timeoutMs, () => inflight, `${name} load`);
  if (timedOut) throw new Error(`${name}: the load did not finish within ${Math.round(timeoutMs / 1000)} s (${recorder.ops} of ${count} keys)`);
  return recorder.result();
}

/**
 * A mixed phase: for `seconds`, each of `concurrency` workers reads (with the workload's read proportion) or
 * updates a key from the chooser, one operation at a time. Operations started before `seconds` ran out count.
 */
export async function mixPhase(
  name: string,
  client: SystemClient,
  workload: Workload,
  keys: readonly string[],
  chooser: KeyChooser,
  values: Values,
  concurrency: number,
  seconds: number,
): Promise<DriverRun> {
  const started = performance.now();
  const end = started + seconds * 1000;
  const recorder = new Recorder(started);
  const readProportion = workload.readProportion;
  const valueBytes = values.valueBytes;
  let inflight = 0;
  const worker = async () => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end) return;
      const index = chooser.next();
      const key = keys[index]!;
      const read = readProportion >= 1 || (readProportion > 0 && Math.random() < readProportion);
      inflight++;
      try {
        if (read) {
          const got = await client.get(key);
          const t1 = performance.now();
          if (got === undefined) recorder.fail(`get ${key}`, 'NOT_FOUND', 'no value under a loaded key');
          else if (got.length !== valueBytes) recorder.fail(`get ${key}`, 'WRONG_VALUE', `${got.length} bytes, not ${valueBytes}`);
          else recorder.done(t0, t1, true);
        } else {
          await client.put(key, values.of(index));
          recorder.done(t0, performance.now(), false);
        }
      } catch (error) {
        recorder.fail(`${read ? 'get' : 'put'} ${key}`, errorCode(error), (error as Error).message);
        await yieldToIo();
      } finally {
        inflight--;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, () => worker());
  await drain(workers, seconds * 1000, () => inflight, `${name} workload ${workload.label}`);
  return recorder.result(Math.floor(seconds));
}

// One measured phase as the generators report it and as the parent merges it. Each generator process sends its
// own GeneratorRun over IPC (plain data; its latency samples as typed arrays, which the structured clone copies
// as they are); the phase is their union: every latency, ops and errors summed, its time from the first
// generator's start to the last one's last answer (the start times are taken as performance.timeOrigin + now, so
// they compare across processes on one machine). Pure: no I/O.
import { Latencies } from '../stats.js';

/** How many of the first errors a phase keeps, over all generators. */
export const firstErrorsMax = 10;

export interface GeneratorRun {
  /** When the phase started in this generator, ms since the epoch. */
  startedAtMs: number;
  /** From its start to its last operation's end, in s. */
  seconds: number;
  /** Each read's and each update's latency, ms. */
  reads: Float64Array;
  updates: Float64Array;
  /** Failed operations by error code. */
  errors: Array<[code: string, count: number]>;
  firstErrors: string[];
  /** Operations completed in each whole second since its start. */
  perSecond: number[];
  /** The CPU it used during the phase (user + system, every thread), in s; the parent fills it in from the generator's report. */
  cpuSeconds: number;
}

export interface PhaseRun {
  /** Measured time: from the first generator's start to the last operation's end, in s. */
  seconds: number;
  all: Latencies;
  reads: Latencies;
  updates: Latencies;
  errors: Map<string, number>;
  firstErrors: string[];
  /** Operations completed in each whole second of the phase, all generators together. */
  perSecond: number[];
  /** Each generator's CPU seconds and completed operations. */
  generators: Array<{ cpuSeconds: number; ops: number }>;
}

/**
 * The generators' runs of one phase as one. perSecond is aligned on the first start (a generator that started in
 * a later second counts from there) and cut to wholeSeconds when given (a timed phase: its last, partial second
 * is left out).
 */
export function mergeRuns(runs: readonly GeneratorRun[], wholeSeconds?: number): PhaseRun {
  if (runs.length === 0) throw new Error('no generator run to merge');
  const start = Math.min(...runs.map((r) => r.startedAtMs));
  const end = Math.max(...runs.map((r) => r.startedAtMs + r.seconds * 1000));
  const perSecond: number[] = [];
  const errors = new Map<string, number>();
  const firstErrors: string[] = [];
  runs.forEach((run, i) => {
    const offset = Math.floor((run.startedAtMs - start) / 1000);
    run.perSecond.forEach((ops, second) => {
      while (perSecond.length <= offset + second) perSecond.push(0);
      perSecond[offset + second]! += ops;
    });
    for (const [code, count] of run.errors) errors.set(code, (errors.get(code) ?? 0) + count);
    for (const e of run.firstErrors) if (firstErrors.length < firstErrorsMax) firstErrors.push(runs.length > 1 ? `generator ${i + 1}: ${e}` : e);
  });
  const reads = Latencies.of(runs.map((r) => r.reads));
  const updates = Latencies.of(runs.map((r) => r.updates));
  return {
    seconds: Math.max(1e-3, (end - start) / 1000),
    all: Latencies.of([...runs.map((r) => r.reads), ...runs.map((r) => r.updates)]),
    reads,
    updates,
    errors,
    firstErrors,
    perSecond: wholeSeconds === undefined ? perSecond : perSecond.slice(0, wholeSeconds),
    generators: runs.map((r) => ({ cpuSeconds: r.cpuSeconds, ops: r.reads.length + r.updates.length })),
  };
}

/** Splits total into parts shares that differ by at most one, the larger ones first: [share of part 0, ...]. */
export function shares(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  const extra = total % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

/** Splits [0, total) into parts consecutive ranges of shares(total, parts). */
export function ranges(total: number, parts: number): Array<{ from: number; to: number }> {
  let from = 0;
  return shares(total, parts).map((n) => {
    const range = { from, to: from + n };
    from += n;
    return range;
  });
}

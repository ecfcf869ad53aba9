// Statistics and run descriptions shared by the benchmarks: a growing latency record with nearest-rank
// percentiles, medians, rounding, the machine a run happened on and the code it ran.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root (this file runs as dist/bench/stats.js). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const round = (n: number, digits: number) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);

/** Latencies in ms, appended to a growing Float64Array; percentiles by sorting once at the end. */
export class Latencies {
  private values = new Float64Array(1 << 16);
  length = 0;

  add(ms: number): void {
    if (this.length === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.length++] = ms;
  }

  sorted(): Float64Array {
    return this.values.slice(0, this.length).sort();
  }

  /** A copy of the latencies recorded so far, exactly as long as they are (to send to another process). */
  samples(): Float64Array {
    return this.values.slice(0, this.length);
  }

  /** Latencies made of several records' samples, in order. */
  static of(parts: readonly Float64Array[]): Latencies {
    const merged = new Latencies();
    const length = parts.reduce((sum, p) => sum + p.length, 0);
    merged.values = new Float64Array(Math.max(1, length));
    let at = 0;
    for (const part of parts) {
      merged.values.set(part, at);
      at += part.length;
    }
    merged.length = length;
    return merged;
  }

  static merge(a: Latencies, b: Latencies): Latencies {
    const merged = new Latencies();
    merged.values = new Float64Array(Math.max(1, a.length + b.length));
    merged.values.set(a.values.subarray(0, a.length));
    merged.values.set(b.values.subarray(0, b.length), a.length);
    merged.length = a.length + b.length;
    return merged;
  }
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1]!;
}

export function summary(latencies: Latencies) {
  const sorted = latencies.sorted();
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 0.5), 3),
    p99: round(percentile(sorted, 0.99), 3),
    p999: round(percentile(sorted, 0.999), 3),
    max: round(sorted.length ? sorted[sorted.length - 1]! : NaN, 3),
  };
}

/** The median of some numbers (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/** Which code ran: the git commit of the tree the script was built from, "-dirty" when it has changes. */
export function build(): string {
  if (process.env.KV_BENCH_BUILD) return process.env.KV_BENCH_BUILD; // a label for a copy of the tree outside git
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: repoRoot, encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverage: os.loadavg().map((n) => round(n, 2)),
  };
}

/** One line for a table: "AMD EPYC, 2 cores, 23.5 GiB, node v20…, linux … x64". */
export const describeMachine = (m: ReturnType<typeof machine>) =>
  `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}`;

// What a YCSB run reports: the results' shape (also the JSON written to bench/results/ycsb.json), the table
// (system × workload: ops/s, p50/p99/p999, CPU per operation, kv's ratio to each system), the servers' memory
// after the load and at the end and what the load took on disk, the targets, the block it keeps in
// bench/RESULTS.md (the two charts are drawn by ycsb/charts.ts, which alone needs the bench's vega install).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ProcessMemory } from '../proc-cpu.js';
import { describeMachine, machine, median, percentile, round, summary } from '../stats.js';
import type { Distribution, WorkloadName } from './workload.js';

export type Summary = ReturnType<typeof summary>;

export interface PhaseResult {
  workload: WorkloadName;
  /** "load", "A", "B", "C". */
  label: string;
  seconds: number;
  ops: number;
  opsPerSecond: number;
  latencyMs: Summary;
  readLatencyMs: Summary;
  updateLatencyMs: Summary;
  errors: number;
  errorsByCode: Record<string, number>;
  firstErrors: string[];
  cpu: {
    /** CPU µs per operation of the benchmark process (the load generator and the client library; for the in-process store, the store too). */
    benchProcessMicrosPerOp: number;
    /** CPU µs per operation of the server processes together; null for the in-process store. */
    serversMicrosPerOp: number | null;
    processes: Array<{ name: string; pid: number; cpuSeconds: number; cpuPercent: number }>;
    /** The whole machine's CPU during the phase, in % of one core (2 cores = 200%). */
    machineBusyPercent: number | undefined;
    /** What the machine used beyond this process and the servers (other work on a shared machine), in % of one core. */
    otherProcessesPercent: number | undefined;
  };
  opsPerWholeSecond: number[];
  /** The latency CDF, sampled: the fraction of operations at or below ms. */
  cdf: Array<{ fraction: number; ms: number }>;
}

export interface SystemResult {
  name: string;
  label: string;
  status: 'ok' | 'failed' | 'skipped';
  /** Why it was skipped or failed. */
  reason?: string;
  details?: string;
  /** Phases that completed (a failed system keeps the ones before the failure). */
  phases: PhaseResult[];
  /**
   * Each server process's memory right after the load phase and at the end (after the last workload; only when a
   * workload ran after the load). Absent for the in-process store and for a system that failed before.
   */
  memory?: { afterLoad: ProcessMemory[]; atEnd?: ProcessMemory[] };
  /** Its data dirs' size right after the load phase (kv: one per daemon): bytes allocated on disk (du) and the files' apparent size. */
  diskAfterLoad?: Array<{ name: string; bytes: number; apparentBytes: number }>;
  /** kv only: warnings and errors its processes logged. */
  logProblems?: { count: number; first: string[] };
  seconds: number;
}

export interface YcsbOptions {
  systems: string[];
  workloads: WorkloadName[];
  keys: number;
  valueBytes: number;
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  distribution: Distribution;
  partitions: number;
  /** How many times the whole sequence of systems ran (--rounds). */
  rounds: number;
  /** --cpu-prof: where the kv processes write their CPU profiles. */
  cpuProfileDir: string | undefined;
  write: boolean;
  json: boolean;
}

export interface YcsbResults {
  command: string;
  date: string;
  build: string;
  machine: ReturnType<typeof machine>;
  machineAtEnd: ReturnType<typeof machine>;
  options: YcsbOptions;
  /**
   * One entry per system. With more than one round, each workload's phase is the round's with the median ops/s
   * (a phase that was measured, with its own latencies and CPU), and memory and disk are the first round's.
   */
  systems: SystemResult[];
  /** Every round's systems, in the order they ran; present when --rounds > 1. */
  rounds?: SystemResult[][];
  targets: TargetResult[];
  totalSeconds: number;
}

export interface TargetResult {
  target: string;
  verdict: 'met' | 'NOT met' | 'n/a';
  detail: string;
}

/** The system the targets are about, and the one every other system is compared with. */
export const reference = 'kv';

const displayNames: Record<string, string> = {
  kv: 'kv, tolerate 0',
  'kv-tolerate1': 'kv, tolerate 1',
  'kv-tls': 'kv, tolerate 0, TLS',
  redis: 'Redis',
  etcd: 'etcd',
  level: 'classic-level in-process',
};
export const displayName = (name: string) => displayNames[name] ?? name;

/** Fractions at which the CDF is sampled: every percent, then the tail more finely. */
const cdfFractions = [
  0.001, 0.005, ...Array.from({ length: 99 }, (_, i) => (i + 1) / 100), 0.995, 0.998, 0.999, 0.9995, 0.9999, 1,
];

export function cdfOf(sorted: Float64Array): Array<{ fraction: number; ms: number }> {
  if (sorted.length === 0) return [];
  return cdfFractions.map((fraction) => ({ fraction, ms: round(percentile(sorted, fraction), 4) }));
}

// ---- targets ----

const mixed: WorkloadName[] = ['a', 'b', 'c'];

type Systems = Pick<YcsbResults, 'systems' | 'rounds'>;

function phaseIn(systems: SystemResult[], system: string, workload: WorkloadName): PhaseResult | undefined {
  return systems.find((s) => s.name === system)?.phases.find((p) => p.workload === workload);
}

const phaseOf = (results: Systems, system: string, workload: WorkloadName) => phaseIn(results.systems, system, workload);

/** kv's ops/s over a peer's within one round's systems; undefined when either did not run the workload. */
function ratioIn(systems: SystemResult[], peer: string, workload: WorkloadName): number | undefined {
  const kv = phaseIn(systems, reference, workload);
  const other = phaseIn(systems, peer, workload);
  return kv && other && other.opsPerSecond > 0 ? kv.opsPerSecond / other.opsPerSecond : undefined;
}

/** One side-by-side ratio per round (one in all without --rounds). */
function roundRatios(results: Systems, peer: string, workload: WorkloadName): number[] {
  return (results.rounds ?? [results.systems]).map((systems) => ratioIn(systems, peer, workload)).filter((v): v is number => v !== undefined);
}

/** kv's ratio to a peer: the median of the rounds' side-by-side ratios. */
function ratioOf(results: Systems, peer: string, workload: WorkloadName): number | undefined {
  const ratios = roundRatios(results, peer, workload);
  return ratios.length === 0 ? undefined : median(ratios);
}

/**
 * The systems of several rounds as one: per workload the phase with the median ops/s (the lower middle one for an
 * even count), memory and disk of the first round; failed when any round failed.
 */
export function medianSystems(rounds: SystemResult[][]): SystemResult[] {
  return rounds[0]!.map((first) => {
    const all = rounds.map((systems) => systems.find((s) => s.name === first.name)!);
    const failed = all.find((s) => s.status === 'failed');
    const workloadsRun = [...new Set(all.flatMap((s) => s.phases.map((p) => p.workload)))];
    const phases = workloadsRun.map((w) => {
      const runs = all.flatMap((s) => s.phases.filter((p) => p.workload === w)).sort((a, b) => a.opsPerSecond - b.opsPerSecond);
      return runs[Math.floor((runs.length - 1) / 2)]!;
    });
    return {
      ...first,
      ...(failed ? { status: 'failed' as const, reason: failed.reason } : {}),
      phases,
      seconds: round(all.reduce((sum, s) => sum + s.seconds, 0), 1),
    };
  });
}

/** The issue's targets, judged on workloads A, B and C (the load phase is shown, not judged). */
export function evaluateTargets(results: Omit<YcsbResults, 'targets'>): TargetResult[] {
  const r = results as YcsbResults;
  const judged = mixed.filter((w) => results.options.workloads.includes(w));
  const ratio = (peer: string, w: WorkloadName) => ratioOf(r, peer, w);
  // With rounds, each verdict is on the median of the rounds' side-by-side ratios; the detail says how many rounds
  // met the bar on their own.
  const rounds = results.rounds?.length ?? 1;
  const perRound = (peer: string, w: WorkloadName, ok: (v: number) => boolean) => {
    if (rounds === 1) return '';
    const ratios = roundRatios(r, peer, w);
    return ratios.length === 0 ? '' : ` (${ratios.filter(ok).length} of ${ratios.length} rounds)`;
  };
  const label = (w: WorkloadName) => w.toUpperCase();
  const verdict = (values: Array<number | undefined>, ok: (v: number) => boolean): TargetResult['verdict'] =>
    values.length === 0 || values.some((v) => v === undefined) ? 'n/a' : values.every((v) => ok(v!)) ? 'met' : 'NOT met';

  const loadedBytes = results.options.keys * results.options.valueBytes;
  const kvMemory = results.systems.find((s) => s.name === reference)?.memory?.afterLoad;
  const kvDaemons = kvMemory ? serverMemory(reference, kvMemory) : undefined;

  const etcd = judged.map((w) => ratio('etcd', w));
  const redisC = results.options.workloads.includes('c') ? [ratio('redis', 'c')] : [];
  const p99 = judged.map((w) => phaseOf(r, reference, w)?.latencyMs.p99);
  return [
    {
      target: 'kv (3 daemons, tolerate 0) ≥ 10× etcd on every workload',
      verdict: verdict(etcd, (v) => v >= 10),
      detail: judged.length
        ? judged.map((w, i) => `${label(w)} ${fmtRatio(etcd[i])}${perRound('etcd', w, (v) => v >= 10)}`).join(', ') +
          (rounds > 1 ? `; medians of ${rounds} rounds` : '')
        : 'no workload A, B or C run',
    },
    {
      target: 'kv ≥ ½ Redis on workload C',
      verdict: verdict(redisC, (v) => v >= 0.5),
      detail: redisC.length ? `C ${fmtRatio(redisC[0])}${perRound('redis', 'c', (v) => v >= 0.5)}` : 'workload C not run',
    },
    {
      target: `kv p99 < 10 ms at ${results.options.concurrency} concurrent`,
      verdict: verdict(p99, (v) => v < 10),
      detail: judged.length
        ? judged.map((w, i) => `${label(w)} ${p99[i] === undefined ? 'n/a' : `${fmtMs(p99[i]!)} ms`}`).join(', ')
        : 'no workload A, B or C run',
    },
    {
      target: 'kv daemon memory (RSS) < 200 MB after loading 1 GB',
      verdict: kvDaemons === undefined || loadedBytes < oneGb ? 'n/a' : kvDaemons.rssBytes < 200e6 ? 'met' : 'NOT met',
      detail:
        kvDaemons === undefined
          ? 'kv did not load'
          : `largest daemon ${fmtMb(kvDaemons.rssBytes)} MB (peak ${fmtMb(kvDaemons.peakRssBytes)} MB) after loading ${fmtMb(loadedBytes)} MB` +
            (loadedBytes < oneGb ? '; judged only when ≥ 1 GB is loaded (--keys 1000000 --value-bytes 1000)' : ''),
    },
  ];
}

// ---- memory and disk ----

const oneGb = 1e9;
/** MB = 10^6 bytes, as the issue's "200 MB" and "1 GB". */
const fmtMb = (bytes: number) => Math.round(bytes / 1e6).toLocaleString('en-US');

/**
 * A system's server memory at one moment: for kv, the daemon with the largest resident set (and the largest
 * peak among the daemons); for the others, their server processes together.
 */
export function serverMemory(system: string, samples: ProcessMemory[]): { rssBytes: number; peakRssBytes: number; over: string } | undefined {
  const daemons = samples.filter((p) => p.name.startsWith('daemon'));
  if (system.startsWith('kv') && daemons.length > 0) {
    return {
      rssBytes: Math.max(...daemons.map((p) => p.rssBytes)),
      peakRssBytes: Math.max(...daemons.map((p) => p.peakRssBytes)),
      over: `max over ${daemons.length} daemons`,
    };
  }
  if (samples.length === 0) return undefined;
  return {
    rssBytes: samples.reduce((sum, p) => sum + p.rssBytes, 0),
    peakRssBytes: samples.reduce((sum, p) => sum + p.peakRssBytes, 0),
    over: samples.map((p) => p.name).join(' + '),
  };
}

/** "daemon :2012 95 MB (peak 120), ...; on disk 1,050 MB (daemon-1 350, ...)": a progress line after the load. */
export function memoryLine(result: SystemResult, when: 'afterLoad' | 'atEnd'): string {
  const samples = result.memory?.[when] ?? [];
  const parts = samples.map((p) => `${p.name} ${fmtMb(p.rssBytes)} MB (peak ${fmtMb(p.peakRssBytes)}, file-backed ${fmtMb(p.rssFileBytes)})`);
  let line = parts.length ? `RSS ${parts.join(', ')}` : 'no server processes';
  const disk = when === 'afterLoad' ? result.diskAfterLoad : undefined;
  if (disk?.length) {
    const total = disk.reduce((sum, d) => sum + d.bytes, 0);
    line += `; on disk ${fmtMb(total)} MB${disk.length > 1 ? ` (${disk.map((d) => `${d.name} ${fmtMb(d.bytes)}`).join(', ')})` : ''}`;
  }
  return line;
}

/** The servers' memory after the load and at the end, and what the load took on disk, as a Markdown table. */
export function memoryTable(results: YcsbResults): string {
  const rows = results.systems.filter((s) => s.memory !== undefined || s.diskAfterLoad !== undefined);
  if (rows.length === 0) return '';
  const o = results.options;
  const lines: string[] = [];
  lines.push(
    `Memory after load / at end: resident set (VmRSS) of the server processes and its peak so far (VmHWM), MB = 10^6 bytes; ` +
      `the load put ${o.keys.toLocaleString('en-US')} × ${o.valueBytes} random bytes = ${fmtMb(o.keys * o.valueBytes)} MB of values. ` +
      `On disk: the data dirs right after the load (du; kv: the daemons' dirs together).`,
  );
  lines.push('');
  lines.push('| system | processes | RSS after load | peak after load | RSS at end | peak at end | on disk after load |');
  lines.push('|---|---|--:|--:|--:|--:|--:|');
  for (const s of rows) {
    const after = s.memory ? serverMemory(s.name, s.memory.afterLoad) : undefined;
    const end = s.memory?.atEnd ? serverMemory(s.name, s.memory.atEnd) : undefined;
    const mb = (v: number | undefined) => (v === undefined ? '–' : `${fmtMb(v)} MB`);
    const disk = s.diskAfterLoad?.length ? `${fmtMb(s.diskAfterLoad.reduce((sum, d) => sum + d.bytes, 0))} MB` : s.memory ? '– (in memory only)' : '–';
    const over = after?.over ?? (s.memory ? '–' : 'in the bench process');
    lines.push(`| ${displayName(s.name)} | ${over} | ${mb(after?.rssBytes)} | ${mb(after?.peakRssBytes)} | ${mb(end?.rssBytes)} | ${mb(end?.peakRssBytes)} | ${disk} |`);
  }
  return lines.join('\n') + '\n';
}

// ---- the table ----

/** With --rounds: every round's kv ops/s and its ratio to each peer in that round, per workload. */
export function roundsTable(results: Systems & Pick<YcsbResults, 'options'>): string {
  if (!results.rounds) return '';
  const peers = results.systems.map((s) => s.name).filter((n) => n !== reference && results.rounds!.some((r) => r.some((s) => s.name === n && s.phases.length > 0)));
  const lines: string[] = [];
  lines.push(
    `Each round ran every system in turn; ratios are kv's ops/s over the peer's in the same round. The table above shows, ` +
      `per system and workload, the round with the median ops/s, and kv's median ratio over the rounds.`,
  );
  lines.push('');
  lines.push(`| round | workload | kv ops/s | ${peers.map((p) => `kv ÷ ${displayName(p)}`).join(' | ')} |`);
  lines.push(`|--:|---|--:|${peers.map(() => '--:').join('|')}|`);
  results.rounds.forEach((systems, i) => {
    for (const w of results.options.workloads) {
      const kv = phaseIn(systems, reference, w);
      if (!kv) continue;
      const ratios = peers.map((peer) => fmtRatio(ratioIn(systems, peer, w)));
      lines.push(`| ${i + 1} | ${kv.label} | ${fmtOps(kv.opsPerSecond)} | ${ratios.join(' | ')} |`);
    }
  });
  return lines.join('\n') + '\n';
}

const fmtRatio = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? 'n/a' : `${v >= 10 ? v.toFixed(1) : v.toFixed(2)}×`);
const fmtMs = (v: number) => (!Number.isFinite(v) ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const fmtOps = (v: number) => Math.round(v).toLocaleString('en-US');

/** The results as Markdown: the table, the targets, the systems' details, skipped and failed systems. */
export function table(results: YcsbResults): string {
  const o = results.options;
  const lines: string[] = [];
  lines.push(`| workload | system | ops/s | p50 ms | p99 ms | p999 ms | CPU µs/op (bench process / servers) | errors | kv ÷ system (ops/s) |`);
  lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|');
  const ran = results.systems.filter((s) => s.phases.length > 0);
  for (const w of o.workloads) {
    for (const s of ran) {
      const p = s.phases.find((x) => x.workload === w);
      if (!p) continue;
      const cpu = `${p.cpu.benchProcessMicrosPerOp} / ${p.cpu.serversMicrosPerOp ?? '–'}`;
      const errors = p.errors === 0 ? '0' : `${p.errors} (${Object.entries(p.errorsByCode).map(([k, v]) => `${k} ${v}`).join(', ')})`;
      const vs = s.name === reference ? '–' : fmtRatio(ratioOf(results, s.name, w));
      lines.push(`| ${p.label} | ${displayName(s.name)} | ${fmtOps(p.opsPerSecond)} | ${fmtMs(p.latencyMs.p50)} | ${fmtMs(p.latencyMs.p99)} | ${fmtMs(p.latencyMs.p999)} | ${cpu} | ${errors} | ${vs} |`);
    }
  }
  const rounds = roundsTable(results);
  if (rounds) {
    lines.push('');
    lines.push(rounds.trimEnd());
  }
  const memory = memoryTable(results);
  if (memory) {
    lines.push('');
    lines.push(memory.trimEnd());
  }
  lines.push('');
  lines.push('Targets (throughput and latency on workloads A, B, C, memory after the load; kv = 3 daemons, tolerate 0):');
  lines.push('');
  for (const t of results.targets) lines.push(`- ${t.target}: **${t.verdict}** (${t.detail})`);
  lines.push('');
  lines.push('Systems:');
  lines.push('');
  for (const s of results.systems) {
    if (s.status === 'skipped') lines.push(`- ${s.name}: skipped: ${s.reason}`);
    else if (s.status === 'failed') lines.push(`- ${s.name}: FAILED: ${s.reason}${s.details ? ` (${s.details})` : ''}`);
    else lines.push(`- ${s.name}: ${s.details ?? s.label}${s.logProblems?.count ? `; ${s.logProblems.count} warn/error log lines` : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** One paragraph on how the figures were made. */
export function describeRun(results: YcsbResults): string {
  const o = results.options;
  const m = results.machine;
  return [
    `${o.keys.toLocaleString('en-US')} keys of ${o.valueBytes}-byte values (random bytes, different for each key), ${o.distribution === 'zipfian' ? 'scrambled zipfian (0.99)' : 'uniform'} key choice,`,
    `${o.concurrency} concurrent requests (closed loop, one client instance per system), ${o.seconds} s per workload after a`,
    `${o.warmupSeconds} s warm-up that is not measured; the load phase puts every key once. kv: ${o.partitions} partitions.`,
    o.rounds > 1 ? `${o.rounds} rounds, each starting every system afresh, in turn.` : '',
    `Machine: ${describeMachine(m)}; load average ${m.loadAverage.join(' ')} before, ${results.machineAtEnd.loadAverage.join(' ')} after.`,
    otherLoad(results),
    `Code: ${results.build}. ${results.date}, ${Math.round(results.totalSeconds)} s in all.`,
  ].join(' ');
}

/** How busy the rest of the machine was during the measured phases (it shares the cores with the run). */
function otherLoad(results: YcsbResults): string {
  const others = results.systems.flatMap((s) => s.phases.map((p) => p.cpu.otherProcessesPercent)).filter((v): v is number => v !== undefined);
  if (others.length === 0) return '';
  return `Other processes used ${median(others)}% of one core (median over the phases; max ${Math.max(...others)}%) of the machine's ${results.machine.cores * 100}%.`;
}

// ---- bench/RESULTS.md ----

export const beginMarker = '<!-- ycsb:begin -->';
export const endMarker = '<!-- ycsb:end -->';

export function resultsBlock(results: YcsbResults): string {
  return [
    beginMarker,
    '## YCSB-style comparison: kv, Redis, etcd and LevelDB in-process (issue 5)',
    '',
    `Written by \`${results.command}\` (bench/ycsb/). ${describeRun(results)}`,
    '',
    table(results).trimEnd(),
    '',
    '![Throughput per workload and system](charts/ycsb-throughput.svg)',
    '',
    '![Latency CDF per workload](charts/ycsb-latency-cdf.svg)',
    '',
    'Raw figures (every phase, per-op CPU, per-second ops, the CDFs): [`results/ycsb.json`](results/ycsb.json).',
    endMarker,
  ].join('\n');
}

/** Replaces the block between the markers, or inserts it after the file's first paragraph (the first text after the title). */
export function spliceBlock(text: string, block: string): string {
  const begin = text.indexOf(beginMarker);
  const end = text.indexOf(endMarker);
  if (begin !== -1 && end > begin) return text.slice(0, begin) + block + text.slice(end + endMarker.length);
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length && (lines[i]!.trim() === '' || lines[i]!.startsWith('#'))) i++;
  if (i >= lines.length) return `${text.trimEnd()}\n\n${block}\n`;
  while (i < lines.length && lines[i]!.trim() !== '') i++;
  return [...lines.slice(0, i), '', block, ...lines.slice(i)].join('\n');
}

export function writeResultsMd(path: string, results: YcsbResults): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmark results\n';
  writeFileSync(path, spliceBlock(text, resultsBlock(results)));
}

export function writeJson(path: string, results: YcsbResults): void {
  mkdirSync(dirname(path), { recursive: true });
  // Compact: indented, a run of several rounds is a megabyte, most of it one CDF number per line.
  writeFileSync(path, JSON.stringify(results) + '\n');
}

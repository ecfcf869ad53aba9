// What a YCSB run reports: the results' shape (also the JSON written to bench/results/ycsb.json), the table
// (system × workload: ops/s, the servers' and the generators' CPU per operation, p50/p99/p999, kv's ratio to each
// system), the generator ceiling (the null system's ops/s) with a warning for any system near it, the servers'
// memory after the load and at the end and what the load took on disk, the targets, the block it keeps in
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
    /** CPU µs per operation of the generator processes together (the driver and the client library; for a store inside the generators, null and level, the store too). */
    generatorMicrosPerOp: number;
    /** CPU µs per operation of the server processes together; null for a store inside the generators. */
    serversMicrosPerOp: number | null;
    processes: Array<{ name: string; pid: number; cpuSeconds: number; cpuPercent: number }>;
    /** The whole machine's CPU during the phase, in % of one core (2 cores = 200%). */
    machineBusyPercent: number | undefined;
    /** What the machine used beyond the generators and the servers (other work on a shared machine), in % of one core. */
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
  /** Requests in flight in all, split over the generators. */
  concurrency: number;
  /** Load-generator processes (--generators). */
  generators: number;
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

/** The system that measures the generators alone (a Map in each of them). */
export const ceilingSystem = 'null';

const displayNames: Record<string, string> = {
  null: 'null (generator ceiling)',
  kv: 'kv, tolerate 0',
  'kv-durable': 'kv, tolerate 0, durable',
  'kv-tolerate1': 'kv, tolerate 1',
  'kv-tls': 'kv, tolerate 0, TLS',
  redis: 'Redis',
  'redis-everysec': 'Redis, AOF everysec',
  'redis-always': 'Redis, AOF always',
  etcd: 'etcd',
  level: 'classic-level in the generators',
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

type Systems = Pick<YcsbResults, 'systems' | 'rounds'>;

function phaseIn(systems: SystemResult[], system: string, workload: WorkloadName): PhaseResult | undefined {
  return systems.find((s) => s.name === system)?.phases.find((p) => p.workload === workload);
}

const phaseOf = (results: Systems, system: string, workload: WorkloadName) => phaseIn(results.systems, system, workload);

/** A system's ops/s over a peer's within one round's systems; undefined when either did not run the workload. */
function ratioIn(systems: SystemResult[], system: string, peer: string, workload: WorkloadName): number | undefined {
  const one = phaseIn(systems, system, workload);
  const other = phaseIn(systems, peer, workload);
  return one && other && other.opsPerSecond > 0 ? one.opsPerSecond / other.opsPerSecond : undefined;
}

/** One side-by-side ratio per round (one in all without --rounds). */
function roundRatios(results: Systems, system: string, peer: string, workload: WorkloadName): number[] {
  return (results.rounds ?? [results.systems]).map((systems) => ratioIn(systems, system, peer, workload)).filter((v): v is number => v !== undefined);
}

/** A system's ratio to a peer: the median of the rounds' side-by-side ratios. */
function ratioOf(results: Systems, system: string, peer: string, workload: WorkloadName): number | undefined {
  const ratios = roundRatios(results, system, peer, workload);
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

/** A target on a ratio of two systems' ops/s in one workload (the load phase: writes; C: reads). */
interface RatioTarget {
  target: string;
  system: string;
  peer: string;
  workload: WorkloadName;
  min: number;
}

/** Issue 15's targets, each between systems of like durability. */
export const ratioTargets: readonly RatioTarget[] = [
  { target: 'kv reads (workload C) ≥ 1.0× Redis', system: 'kv', peer: 'redis', workload: 'c', min: 1 },
  { target: 'kv writes (load phase) ≥ 0.6× Redis', system: 'kv', peer: 'redis', workload: 'load', min: 0.6 },
  { target: 'kv-durable writes (load phase) ≥ 10× etcd', system: 'kv-durable', peer: 'etcd', workload: 'load', min: 10 },
  { target: 'kv-durable writes (load phase) ≥ 1.0× Redis with appendfsync always', system: 'kv-durable', peer: 'redis-always', workload: 'load', min: 1 },
  { target: 'kv-tolerate1 writes (load phase) ≥ 0.6× kv', system: 'kv-tolerate1', peer: 'kv', workload: 'load', min: 0.6 },
];

/** The p99 target holds at this many requests in flight. */
export const p99TargetConcurrency = 64;
export const p99TargetMs = 5;

const workloadLabel = (w: WorkloadName) => (w === 'load' ? 'load' : w.toUpperCase());

/** Why a ratio target could not be judged: which side did not report the workload. */
function missing(results: Omit<YcsbResults, 'targets'>, t: RatioTarget): string {
  if (!results.options.workloads.includes(t.workload)) return t.workload === 'load' ? 'the load phase not reported (--workloads without load)' : `workload ${workloadLabel(t.workload)} not run`;
  const absent = [t.system, t.peer].filter((name) => !phaseOf(results, name, t.workload));
  if (absent.length === 0) return `${t.peer} completed no operation`;
  return `${absent.join(' and ')} did not run ${t.workload === 'load' ? 'the load phase' : `workload ${workloadLabel(t.workload)}`}`;
}

/**
 * The issue's targets: each ratio judged on the median of the rounds' side-by-side ratios (the detail says how
 * many rounds met the bar on their own), and kv's p99 on every workload reported, of the median round.
 */
export function evaluateTargets(results: Omit<YcsbResults, 'targets'>): TargetResult[] {
  const rounds = results.rounds?.length ?? 1;
  const ratios: TargetResult[] = ratioTargets.map((t) => {
    const value = ratioOf(results, t.system, t.peer, t.workload);
    if (value === undefined) return { target: t.target, verdict: 'n/a', detail: missing(results, t) };
    const perRound = roundRatios(results, t.system, t.peer, t.workload);
    const tally = rounds > 1 ? ` (${perRound.filter((v) => v >= t.min).length} of ${perRound.length} rounds; median of the rounds' ratios)` : '';
    return {
      target: t.target,
      verdict: value >= t.min ? 'met' : 'NOT met',
      detail: `${workloadLabel(t.workload)} ${fmtRatio(value)}${tally}`,
    };
  });
  const o = results.options;
  const p99s = o.workloads.map((w) => ({ w, p99: phaseOf(results, reference, w)?.latencyMs.p99 }));
  const p99Detail = p99s.map(({ w, p99 }) => `${workloadLabel(w)} ${p99 === undefined ? 'n/a' : `${fmtMs(p99)} ms`}`).join(', ');
  const p99Verdict: TargetResult['verdict'] =
    o.concurrency !== p99TargetConcurrency || p99s.some((x) => x.p99 === undefined) ? 'n/a' : p99s.every((x) => x.p99! <= p99TargetMs) ? 'met' : 'NOT met';
  const p99: TargetResult = {
    target: `kv p99 ≤ ${p99TargetMs} ms at ${p99TargetConcurrency} in flight, every workload`,
    verdict: p99Verdict,
    detail: o.concurrency !== p99TargetConcurrency ? `judged at --concurrency ${p99TargetConcurrency}, not ${o.concurrency} (${p99Detail})` : p99Detail,
  };
  return [...ratios, p99];
}

// ---- the generator ceiling ----

/** Above this share of the generator ceiling, a system's ops/s says as much about the generators as about it. */
export const ceilingShareWarn = 0.5;
/** A generator busy this much of one core (%) on average during a phase was itself the limit, whatever the ceiling. */
export const generatorBusyWarnPercent = 90;

/**
 * Per workload, the null system's ops/s (what the generators manage with a store that answers at once) and how
 * near the fastest other system came to it; warnings for every system above ceilingShareWarn of it, and for every
 * phase whose generators were busy generatorBusyWarnPercent of a core (the ceiling is the driver alone: a system's
 * client library adds to its generators' CPU, and can saturate them far below the ceiling).
 */
export function generatorCeiling(results: Pick<YcsbResults, 'systems' | 'options'>): { lines: string[]; warnings: string[] } {
  const o = results.options;
  const processes = `${o.generators} generator process${o.generators === 1 ? '' : 'es'}`;
  const lines: string[] = [];
  const warnings: string[] = [];
  const others = results.systems.filter((s) => s.name !== ceilingSystem && s.phases.length > 0);
  for (const w of o.workloads) {
    const ceiling = phaseOf(results, ceilingSystem, w);
    if (!ceiling || ceiling.opsPerSecond <= 0) continue;
    const runs = others.flatMap((s) => s.phases.filter((p) => p.workload === w).map((p) => ({ name: s.name, ops: p.opsPerSecond })));
    const fastest = runs.sort((a, b) => b.ops - a.ops)[0];
    const reached = fastest ? `; the fastest system (${displayName(fastest.name)}) reached ${fmtPercent(fastest.ops / ceiling.opsPerSecond)} of it` : '';
    lines.push(`generator ceiling on ${workloadLabel(w)}: ${fmtOps(ceiling.opsPerSecond)} ops/s with ${processes}${reached}`);
    for (const run of runs) {
      const share = run.ops / ceiling.opsPerSecond;
      if (share > ceilingShareWarn) {
        warnings.push(
          `${displayName(run.name)} on ${workloadLabel(w)} reached ${fmtPercent(share)} of the generator ceiling: the generators are part of what is ` +
            `measured there (compare the servers' CPU µs/op, or run with more --generators)`,
        );
      }
    }
  }
  if (lines.length === 0) lines.push(`generator ceiling: not measured (add ${ceilingSystem} to --systems)`);
  else lines.push(`the ceiling is the driver alone (a store that answers at once); each system's client library adds to its generators' CPU µs/op`);
  for (const s of others) {
    for (const p of s.phases) {
      const busy = p.cpu.processes.filter((x) => x.name.startsWith('generator ')).map((x) => x.cpuPercent);
      const mean = busy.length ? busy.reduce((a, b) => a + b, 0) / busy.length : 0;
      if (mean >= generatorBusyWarnPercent) {
        warnings.push(`${displayName(s.name)} on ${p.label}: its generators were busy ${Math.round(mean)}% of a core each: they were the limit (more --generators, given the cores)`);
      }
    }
  }
  return { lines, warnings };
}

// ---- memory and disk ----

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
    const over = after?.over ?? (s.memory ? '–' : 'in the generators');
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
      const ratios = peers.map((peer) => fmtRatio(ratioIn(systems, reference, peer, w)));
      lines.push(`| ${i + 1} | ${kv.label} | ${fmtOps(kv.opsPerSecond)} | ${ratios.join(' | ')} |`);
    }
  });
  return lines.join('\n') + '\n';
}

const fmtRatio = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? 'n/a' : `${v >= 10 ? v.toFixed(1) : v.toFixed(2)}×`);
const fmtMs = (v: number) => (!Number.isFinite(v) ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const fmtOps = (v: number) => Math.round(v).toLocaleString('en-US');
const fmtPercent = (share: number) => `${Math.round(share * 100)}%`;
const fmtMicros = (v: number | null) => (v === null ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1));

/** The results as Markdown: the table, the generator ceiling, the targets, the systems' details, skipped and failed systems. */
export function table(results: YcsbResults): string {
  const o = results.options;
  const lines: string[] = [];
  lines.push(`| workload | system | ops/s | servers CPU µs/op | generators CPU µs/op | p50 ms | p99 ms | p999 ms | errors | kv ÷ system (ops/s) |`);
  lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|');
  const ran = results.systems.filter((s) => s.phases.length > 0);
  for (const w of o.workloads) {
    for (const s of ran) {
      const p = s.phases.find((x) => x.workload === w);
      if (!p) continue;
      const errors = p.errors === 0 ? '0' : `${p.errors} (${Object.entries(p.errorsByCode).map(([k, v]) => `${k} ${v}`).join(', ')})`;
      const vs = s.name === reference || s.name === ceilingSystem ? '–' : fmtRatio(ratioOf(results, reference, s.name, w));
      lines.push(
        `| ${p.label} | ${displayName(s.name)} | ${fmtOps(p.opsPerSecond)} | ${fmtMicros(p.cpu.serversMicrosPerOp)} | ${fmtMicros(p.cpu.generatorMicrosPerOp)} | ` +
          `${fmtMs(p.latencyMs.p50)} | ${fmtMs(p.latencyMs.p99)} | ${fmtMs(p.latencyMs.p999)} | ${errors} | ${vs} |`,
      );
    }
  }
  const ceiling = generatorCeiling(results);
  lines.push('');
  for (const line of ceiling.lines) lines.push(`- ${line}`);
  for (const warning of ceiling.warnings) lines.push(`- **warning**: ${warning}`);
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
  lines.push('Targets (issue 15: like with like in durability; writes are the load phase, reads workload C; kv = 3 daemons):');
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
    `${o.concurrency} requests in flight (closed loop) over ${o.generators} generator process${o.generators === 1 ? '' : 'es'}, each with its own client instance, ${o.seconds} s per workload after a`,
    `${o.warmupSeconds} s warm-up that is not measured; the load phase puts every key once, after a warm-up as long of puts on other keys (they stay: the data holds up to a few more keys than loaded). kv: ${o.partitions} partitions.`,
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
    '## YCSB-style comparison: kv, Redis, etcd and LevelDB, like with like in durability (issues 5 and 15)',
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

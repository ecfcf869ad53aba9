// YCSB-style side-by-side benchmark: kv and its peers, each started here on loopback and stopped afterwards,
// driven by --generators load-generator processes (bench/ycsb/generator.ts, forked from here), so that the
// generator's own CPU per operation does not cap the fast systems.
//
//   npm run bench [-- ycsb] [--systems null,kv,kv-durable,kv-tolerate1,kv-tls,redis,redis-everysec,redis-always,etcd,level]
//                 [--workloads load,a,b,c] [--keys 100000] [--value-bytes 100] [--concurrency 64] [--generators 2]
//                 [--seconds 10] [--warmup-seconds 2] [--distribution zipfian|uniform] [--partitions 16] [--rounds 1]
//                 [--no-write] [--json]
//
// For each system in turn: start its servers (once, here), fork the generators and connect each with a client
// of its own and concurrency/N requests in flight, warm up with puts on keys of their own (not measured), load
// every key (the load phase, measured: each generator puts its share), then workloads A, B and C, each a warm-up
// that is not measured and then --seconds measured, all generators starting together; then stop it. Each generator sends back its latency samples, ops, errors and
// the CPU it used; the servers' CPU comes from /proc. Both are charged per operation: the servers' µs/op is the
// figure that depends least on the machine and on the generators. The `null` system (a Map in each generator)
// measures the generators' own ceiling; the report says how near each system came to it.
// Systems of like durability: redis (no persistence), redis-everysec and redis-always (AOF fsynced every second
// or before each reply), etcd (fsyncs each commit), kv (no fsync), kv-durable (kv up --durable), kv-tolerate1.
// --rounds N repeats the whole sequence N times (on these noisy machines one run's ratio can be off by a fifth)
// and reports medians. A system that is not installed is skipped with a line saying so; one that fails is
// reported as failed with the reason and the others still run.
// Prints a Markdown table (system × workload: ops/s, servers' and generators' CPU µs per op, p50/p99/p999,
// kv's ratio to each system), the generator ceiling, the servers' memory (RSS and its peak, from /proc) after
// the load and at the end with the data's size on disk after the load, and the targets; unless
// --no-write, writes the block between <!-- ycsb:begin --> and <!-- ycsb:end --> in bench/RESULTS.md, the raw
// results to bench/results/ycsb.json and the charts to bench/charts/ycsb-*.svg.
// Progress goes to stderr. Exit code 0 only when every system that ran did so without a failed operation.
//
// kv's memory after loading 1 GB, the load alone:
//   npm run bench -- ycsb --systems kv --workloads load --keys 1000000 --value-bytes 1000 --no-write
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { killAllKvProcesses, progress, withTimeout } from '../cluster.js';
import { cpuDuring, machineBusyPercent, machineJiffies, sampleMemory, sampleProcesses } from '../proc-cpu.js';
import { build, machine, repoRoot, round, summary } from '../stats.js';
import { writeCharts } from './charts.js';
import { Generators, killAllGenerators } from './generators.js';
import type { PhaseRun } from './phase-run.js';
import { cdfOf, evaluateTargets, medianSystems, memoryLine, table, writeJson, writeResultsMd, type PhaseResult, type SystemResult, type YcsbOptions, type YcsbResults } from './report.js';
import { killAllServerProcesses } from './server-process.js';
import { diskUsage, type ProcessRef, type System } from './system.js';
import { EtcdSystem } from './systems/etcd.js';
import { KvSystem } from './systems/kv.js';
import { LevelSystem } from './systems/level.js';
import { NullSystem } from './systems/null.js';
import { RedisSystem } from './systems/redis.js';
import { workloadNames, workloads, type Distribution, type WorkloadName } from './workload.js';

const systemNames = ['null', 'kv', 'kv-durable', 'kv-tolerate1', 'kv-tls', 'redis', 'redis-everysec', 'redis-always', 'etcd', 'level'] as const;
/** Run when --systems is not given: kv-tls only on request (it measures what TLS costs, issue 13). */
const defaultSystems = systemNames.filter((name) => name !== 'kv-tls');
/** The most generator processes a run may fork. */
const generatorsMax = 64;
const stopTimeoutMs = 60_000;

const usage = `usage: npm run bench [-- ycsb] [options]   (node dist/bench/ycsb/run.js [options])

  --systems LIST          ${systemNames.join(',')} (default: all but kv-tls)
  --workloads LIST        load,a,b,c (default: all; the load phase always runs, it is reported when listed)
  --keys N                keys loaded and chosen from (default 100000)
  --value-bytes B         bytes per value (default 100)
  --concurrency C         requests in flight in all, closed loop (default 64), split evenly over the generators
  --generators N          load-generator processes, forked, each with its own client instance and C/N in
                          flight, started together; their latencies, ops, errors and CPU are merged (default 2)
  --seconds S             measured seconds per workload A, B, C (default 10)
  --warmup-seconds W      unmeasured seconds before each of them and before the load (puts on keys of
                          their own, which stay; default 2)
  --distribution D        zipfian (YCSB's scrambled zipfian, 0.99) or uniform (default zipfian)
  --partitions P          partitions of kv's space (default 16)
  --rounds N              run every system N times, in turn, each afresh; report per workload the round with the
                          median ops/s and kv's median ratio to each peer over the rounds (default 1)
  --cpu-prof DIR          profile every kv process and every generator (node --cpu-prof): a .cpuprofile per
                          process in DIR, a flame graph in Chrome DevTools or speedscope

Systems: null (a Map in each generator: the generators' own ceiling), kv (3 daemons, tolerate 0, no fsync),
kv-durable (kv up --durable: fsynced before acknowledged), kv-tolerate1, kv-tls, redis (no persistence),
redis-everysec and redis-always (AOF, appendfsync everysec / always), etcd (1 member, fsyncs every commit),
level (classic-level in each generator).
  --no-write              print only: leave bench/RESULTS.md, bench/results/ and bench/charts/ alone
  --json                  print the results as JSON instead of the table
  -h, --help              this text
`;

function parseOptions(): YcsbOptions {
  const { values } = parseArgs({
    options: {
      systems: { type: 'string', default: defaultSystems.join(',') },
      workloads: { type: 'string', default: workloadNames.join(',') },
      keys: { type: 'string', default: '100000' },
      'value-bytes': { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '64' },
      generators: { type: 'string', default: '2' },
      seconds: { type: 'string', default: '10' },
      'warmup-seconds': { type: 'string', default: '2' },
      distribution: { type: 'string', default: 'zipfian' },
      partitions: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '1' },
      'cpu-prof': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const list = (text: string) => text.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number in [${min}, ${max}]`);
    return n;
  };
  const num = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!(n >= min && n <= max)) throw new Error(`--${name} must be a number in [${min}, ${max}]`);
    return n;
  };
  const systems = list(values.systems);
  for (const s of systems) if (!(systemNames as readonly string[]).includes(s)) throw new Error(`--systems: no system "${s}"; one of ${systemNames.join(', ')}`);
  if (systems.length === 0) throw new Error('--systems names no system');
  const chosen = list(values.workloads);
  for (const w of chosen) if (!(workloadNames as readonly string[]).includes(w)) throw new Error(`--workloads: no workload "${w}"; one of ${workloadNames.join(', ')}`);
  if (chosen.length === 0) throw new Error('--workloads names no workload');
  const concurrency = int('concurrency', values.concurrency, 1, 10_000);
  const generators = int('generators', values.generators, 1, generatorsMax);
  if (generators > concurrency) throw new Error(`--generators ${generators} is more than --concurrency ${concurrency}: each generator needs a request in flight`);
  const distribution = values.distribution as Distribution;
  if (distribution !== 'zipfian' && distribution !== 'uniform') throw new Error('--distribution must be zipfian or uniform');
  return {
    systems: [...new Set(systems)],
    workloads: workloadNames.filter((w) => chosen.includes(w)),
    keys: int('keys', values.keys, 1, 10_000_000),
    valueBytes: int('value-bytes', values['value-bytes'], 1, 1_000_000),
    concurrency,
    generators,
    seconds: num('seconds', values.seconds, 0.1, 3600),
    warmupSeconds: num('warmup-seconds', values['warmup-seconds'], 0, 600),
    distribution,
    partitions: int('partitions', values.partitions, 1, 4096),
    rounds: int('rounds', values.rounds, 1, 100),
    cpuProfileDir: values['cpu-prof'],
    write: !values['no-write'],
    json: values.json,
  };
}

/** Node flags that make the kv processes write CPU profiles, when --cpu-prof asked for them. */
const profileArgs = (options: YcsbOptions): string[] =>
  options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(options.cpuProfileDir)}`];

function createSystem(name: string, options: YcsbOptions): System {
  const kv = { partitions: options.partitions, nodeArgs: profileArgs(options) };
  switch (name) {
    case 'null':
      return new NullSystem();
    case 'kv':
      return new KvSystem('kv', { ...kv, tolerate: 0 });
    case 'kv-durable':
      return new KvSystem('kv-durable', { ...kv, tolerate: 0, durable: true });
    case 'kv-tolerate1':
      return new KvSystem('kv-tolerate1', { ...kv, tolerate: 1 });
    case 'kv-tls':
      return new KvSystem('kv-tls', { ...kv, tolerate: 0, tls: true });
    case 'redis':
      return new RedisSystem('redis', 'none');
    case 'redis-everysec':
      return new RedisSystem('redis-everysec', 'everysec');
    case 'redis-always':
      return new RedisSystem('redis-always', 'always');
    case 'etcd':
      return new EtcdSystem();
    case 'level':
      return new LevelSystem();
    default:
      throw new Error(`no system ${name}`);
  }
}

/**
 * The load phase's bound: a minute plus 5 ms a key plus 50 ms a MB of values (100 000 keys of 100 bytes: 9 min
 * 20 s; 1 000 000 keys of 1000 bytes, 1 GB: 85 min, where a healthy load takes a minute or two).
 */
const loadTimeoutMs = (keys: number, valueBytes: number) => 60_000 + keys * 5 + (keys * valueBytes) / 20_000;

// ---- CPU around a phase ----

function cpuBefore(system: System) {
  return { servers: sampleProcesses(system.processes()), jiffies: machineJiffies() };
}

/** The servers' CPU from /proc around the phase, the generators' as they reported it, both per operation. */
function cpuAfter(system: System, generators: ProcessRef[], before: ReturnType<typeof cpuBefore>, run: PhaseRun): PhaseResult['cpu'] {
  const servers = cpuDuring(before.servers, sampleProcesses(system.processes()), run.seconds);
  const ops = Math.max(1, run.all.length);
  const serverSeconds = servers.reduce((sum, p) => sum + p.cpuSeconds, 0);
  const generatorSeconds = run.generators.reduce((sum, g) => sum + g.cpuSeconds, 0);
  const busy = machineBusyPercent(before.jiffies, machineJiffies());
  const ours = (100 * (generatorSeconds + serverSeconds)) / run.seconds;
  const generatorProcesses = run.generators.map((g, i) => ({
    name: generators[i]?.name ?? `generator ${i + 1}`,
    pid: generators[i]?.pid ?? 0,
    cpuSeconds: round(g.cpuSeconds, 2),
    cpuPercent: round((100 * g.cpuSeconds) / run.seconds, 0),
  }));
  return {
    generatorMicrosPerOp: round((generatorSeconds * 1e6) / ops, 1),
    serversMicrosPerOp: servers.length === 0 ? null : round((serverSeconds * 1e6) / ops, 1),
    processes: [...generatorProcesses, ...servers],
    machineBusyPercent: busy,
    otherProcessesPercent: busy === undefined ? undefined : Math.max(0, Math.round(busy - ours)),
  };
}

function phaseResult(workload: WorkloadName, run: PhaseRun, cpu: PhaseResult['cpu']): PhaseResult {
  const sorted = run.all.sorted();
  const ops = run.all.length;
  return {
    workload,
    label: workloads[workload].label,
    seconds: round(run.seconds, 3),
    ops,
    opsPerSecond: round(ops / run.seconds, 0),
    latencyMs: summary(run.all),
    readLatencyMs: summary(run.reads),
    updateLatencyMs: summary(run.updates),
    errors: [...run.errors.values()].reduce((a, b) => a + b, 0),
    errorsByCode: Object.fromEntries(run.errors),
    firstErrors: run.firstErrors,
    cpu,
    opsPerWholeSecond: run.perSecond,
    cdf: cdfOf(sorted),
  };
}

// ---- one system ----

let current: System | undefined;

async function benchSystem(system: System, options: YcsbOptions): Promise<SystemResult> {
  const started = performance.now();
  const result: SystemResult = { name: system.name, label: system.label, status: 'ok', phases: [], seconds: 0 };
  const skip = system.unavailable();
  if (skip !== undefined) {
    progress(`skipped ${system.name}: ${skip}`);
    return { ...result, status: 'skipped', reason: skip };
  }
  current = system;
  let generators: Generators | undefined;
  try {
    progress(`${system.name}: starting`);
    await system.start();
    result.details = system.details();
    progress(`${system.name}: up (${result.details}); ${options.generators} generator(s) connecting`);
    generators = await Generators.start(system, { ...options, nodeArgs: profileArgs(options) });
    const generatorRefs = generators.processes();
    progress(`${system.name}: loading ${options.keys} keys, ${options.concurrency} in flight over ${options.generators} generator(s)`);

    if (options.warmupSeconds > 0) await generators.warm(options.warmupSeconds);
    const loadCpu = cpuBefore(system);
    const load = await generators.load(loadTimeoutMs(options.keys, options.valueBytes));
    const loaded = phaseResult('load', load, cpuAfter(system, generatorRefs, loadCpu, load));
    progress(`${system.name}: loaded in ${loaded.seconds} s: ${loaded.opsPerSecond} ops/s, p99 ${loaded.latencyMs.p99} ms, ${loaded.errors} errors`);
    for (const e of loaded.firstErrors.slice(0, 3)) progress(`  ${e}`);
    const servers = system.processes();
    if (servers.length > 0) result.memory = { afterLoad: sampleMemory(servers) };
    const dirs = system.dataDirs();
    if (dirs.length > 0) result.diskAfterLoad = dirs.map((d) => ({ name: d.name, ...diskUsage(d.path) }));
    progress(`${system.name}: after the load: ${memoryLine(result, 'afterLoad')}`);
    if (options.workloads.includes('load')) result.phases.push(loaded);

    for (const name of options.workloads) {
      if (name === 'load') continue;
      const workload = workloads[name];
      if (options.warmupSeconds > 0) await generators.mix(name, options.warmupSeconds, false);
      const cpu = cpuBefore(system);
      const run = await generators.mix(name, options.seconds, true);
      const phase = phaseResult(name, run, cpuAfter(system, generatorRefs, cpu, run));
      result.phases.push(phase);
      progress(
        `${system.name}: workload ${workload.label} (${workload.description}): ${phase.opsPerSecond} ops/s, ` +
          `p50 ${phase.latencyMs.p50} / p99 ${phase.latencyMs.p99} / p999 ${phase.latencyMs.p999} ms, ` +
          `CPU µs/op servers ${phase.cpu.serversMicrosPerOp ?? '–'} / generators ${phase.cpu.generatorMicrosPerOp}, ${phase.errors} errors`,
      );
      for (const e of phase.firstErrors.slice(0, 3)) progress(`  ${e}`);
    }
    if (result.memory && options.workloads.some((w) => w !== 'load')) {
      result.memory.atEnd = sampleMemory(system.processes());
      progress(`${system.name}: at the end: ${memoryLine(result, 'atEnd')}`);
    }
    if (system instanceof KvSystem) result.logProblems = system.problems();
  } catch (error) {
    result.status = 'failed';
    // The first two lines: a process that exited early says why on the line after ("kv: Unknown argument: ...").
    result.reason = (error as Error).message.split('\n').filter((line) => line.trim() !== '').slice(0, 2).join(' ').slice(0, 500);
    progress(`${system.name}: FAILED: ${(error as Error).stack ?? String(error)}`);
    if (system instanceof KvSystem) result.logProblems = system.problems();
  } finally {
    progress(`${system.name}: stopping`);
    await generators?.close();
    try {
      if ((await withTimeout(system.stop().then(() => true), stopTimeoutMs)) === undefined) progress(`${system.name}: did not stop within ${stopTimeoutMs} ms`);
    } catch (error) {
      progress(`${system.name}: stop failed: ${(error as Error).message}`);
    }
    current = undefined;
  }
  result.seconds = round((performance.now() - started) / 1000, 1);
  return result;
}

// ---- main ----

async function main(): Promise<number> {
  let options: YcsbOptions;
  try {
    options = parseOptions();
  } catch (error) {
    process.stderr.write(`ycsb: ${(error as Error).message} (--help for usage)\n`);
    return 2;
  }
  const cleanup = async () => {
    killAllGenerators();
    await current?.stop().catch(() => {});
    await killAllServerProcesses();
    await killAllKvProcesses();
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    progress('interrupted; stopping the running system');
    void withTimeout(cleanup(), 30_000).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const perSystemMs =
    300_000 + 2 * loadTimeoutMs(options.keys, options.valueBytes) + options.workloads.length * ((options.warmupSeconds + options.seconds) * 1000 + 60_000) + stopTimeoutMs;
  const watchdogMs = perSystemMs * options.systems.length * options.rounds;
  const watchdog = setTimeout(() => {
    progress(`the run exceeded ${Math.round(watchdogMs / 1000)} s; stopping`);
    void withTimeout(cleanup(), 30_000).finally(() => process.exit(2));
  }, watchdogMs);
  watchdog.unref();

  const started = performance.now();
  const machineBefore = machine();
  const date = new Date().toISOString();
  progress(
    `ycsb: ${options.systems.join(', ')}; workloads ${options.workloads.join(', ')}; ${options.keys} keys x ${options.valueBytes} bytes, ` +
      `${options.distribution}, ${options.concurrency} in flight over ${options.generators} generator(s), ${options.seconds} s (+${options.warmupSeconds} s warm-up)`,
  );
  const rounds: SystemResult[][] = [];
  try {
    for (let n = 1; n <= options.rounds; n++) {
      if (options.rounds > 1) progress(`round ${n} of ${options.rounds}`);
      const systems: SystemResult[] = [];
      for (const name of options.systems) systems.push(await benchSystem(createSystem(name, options), options));
      rounds.push(systems);
    }
  } finally {
    clearTimeout(watchdog);
  }
  const systems = rounds.length === 1 ? rounds[0]! : medianSystems(rounds);

  const partial = {
    command: `npm run bench -- ycsb ${process.argv.slice(2).join(' ')}`.trim(),
    date,
    build: build(),
    machine: machineBefore,
    machineAtEnd: machine(),
    options,
    systems,
    ...(rounds.length > 1 ? { rounds } : {}),
    totalSeconds: round((performance.now() - started) / 1000, 1),
  };
  const results: YcsbResults = { ...partial, targets: evaluateTargets(partial) };

  if (options.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else process.stdout.write(`\n${table(results)}`);
  if (options.write) {
    const bench = join(repoRoot, 'bench');
    writeJson(join(bench, 'results', 'ycsb.json'), results);
    try {
      await writeCharts(results, join(bench, 'charts', 'ycsb-throughput.svg'), join(bench, 'charts', 'ycsb-latency-cdf.svg'));
    } catch (error) {
      progress(`the charts failed: ${(error as Error).stack ?? String(error)}`);
      return 1;
    }
    writeResultsMd(join(bench, 'RESULTS.md'), results);
    progress('wrote bench/RESULTS.md (the ycsb block), bench/results/ycsb.json, bench/charts/ycsb-throughput.svg, bench/charts/ycsb-latency-cdf.svg');
  }
  progress(`done in ${Math.round(results.totalSeconds)} s`);
  const ok = rounds.flat().every((s) => s.status !== 'failed' && s.phases.every((p) => p.errors === 0));
  if (!ok) progress('FAILED: a system failed or some operations failed (see above)');
  return ok ? 0 : 1;
}

process.exitCode = await main();

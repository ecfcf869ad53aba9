// Throughput benchmark: starts a real local cluster with `kv up` (a coordinator and 3 daemons as child processes,
// in a temp dir, on free ports), loads K keys into a space `bench` (16 partitions), then runs a 50/50 get/put mix
// on uniformly random keys from N concurrent clients for S seconds, recording every operation's latency.
//
//   node dist/bench/throughput.js [--clients 16] [--inflight 1] [--seconds 10] [--keys 100000] [--value-bytes 100] [--json]
//
// Every client is a separate Client instance (its own coordinator session and daemon connections) in this process,
// with `--inflight` requests outstanding at a time. Progress goes to stderr; the result (a table, or JSON with
// --json) goes to stdout. Every wait is bounded; the cluster is stopped with SIGINT and the temp dir removed, also
// when the run fails. Exit code 0 only when no operation failed and the cluster stopped cleanly.
//
// Besides ops/s and latency percentiles it reports the CPU each process used during the timed run (from /proc on
// Linux) and the CPU per operation, which depends much less on what else the machine is doing than ops/s does.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Client, KvError } from '../shared/client.js';
import { freePorts, pause, progress, saveLog, startCluster, stopCluster, stopTimeoutMs, upTimeoutMs, waitUntilUp, withTimeout, type Cluster } from './cluster.js';
import { childrenOf, cpuDuring, kvProcessName, machineBusyPercent, machineJiffies, sampleProcesses, selfCpuSeconds, type ProcessCpu } from './proc-cpu.js';
import { Latencies, build, machine, round, summary } from './stats.js';

const spaceName = 'bench';
const partitions = 16;
const daemonCount = 3;

const loadConcurrency = 64;

// ---- options ----

interface Options {
  clients: number;
  inflight: number;
  seconds: number;
  keys: number;
  valueBytes: number;
  json: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '16' },
      inflight: { type: 'string', default: '1' },
      seconds: { type: 'string', default: '10' },
      keys: { type: 'string', default: '100000' },
      'value-bytes': { type: 'string', default: '100' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node dist/bench/throughput.js [--clients N=16] [--inflight I=1] [--seconds S=10] [--keys K=100000] [--value-bytes B=100] [--json]\n',
    );
    process.exit(0);
  }
  const int = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number of at least ${min}`);
    return n;
  };
  const seconds = Number(values.seconds);
  if (!(seconds > 0) || seconds > 3600) throw new Error('--seconds must be a number in (0, 3600]');
  return {
    clients: int('clients', values.clients, 1),
    inflight: int('inflight', values.inflight, 1),
    seconds,
    keys: int('keys', values.keys, 1),
    valueBytes: int('value-bytes', values['value-bytes'], 0),
    json: values.json,
  };
}

// ---- CPU of the cluster's processes (Linux /proc; empty elsewhere) ----

/** CPU seconds used so far by kv up and its children, and by this process (the clients). */
function sampleCpu(cluster: Cluster): ProcessCpu[] {
  const root = cluster.process.pid;
  const samples: ProcessCpu[] = [{ name: 'bench (clients)', pid: process.pid, cpuSeconds: selfCpuSeconds() }];
  if (root === undefined) return samples;
  return [...samples, ...sampleProcesses([{ name: 'kv up', pid: root }, ...childrenOf(root).map((pid) => ({ name: kvProcessName(pid), pid }))])];
}

// ---- the workload ----

const keyOf = (i: number) => `key${i}`;

async function load(clients: Client[], keys: number, value: Buffer): Promise<{ seconds: number; errors: Map<string, number> }> {
  const errors = new Map<string, number>();
  let next = 0;
  let done = 0;
  const started = performance.now();
  let lastReport = started;
  const worker = async (client: Client) => {
    for (;;) {
      const i = next++;
      if (i >= keys) return;
      try {
        await client.put(spaceName, keyOf(i), { v: value });
      } catch (error) {
        const code = error instanceof KvError ? error.code : 'EXCEPTION';
        errors.set(code, (errors.get(code) ?? 0) + 1);
      }
      done++;
      const now = performance.now();
      if (now - lastReport > 5_000) {
        lastReport = now;
        progress(`loaded ${done}/${keys} (${Math.round(done / ((now - started) / 1000))} keys/s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(loadConcurrency, keys) }, (_, w) => worker(clients[w % clients.length]!)));
  return { seconds: (performance.now() - started) / 1000, errors };
}

interface MixResult {
  seconds: number;
  gets: Latencies;
  puts: Latencies;
  errors: Map<string, number>;
  /** Operations completed in each whole second of the run. */
  perSecond: number[];
  firstErrors: string[];
}

async function mix(clients: Client[], inflight: number, keys: number, value: Buffer, seconds: number): Promise<MixResult> {
  const gets = new Latencies();
  const puts = new Latencies();
  const errors = new Map<string, number>();
  const firstErrors: string[] = [];
  const perSecond = new Array<number>(Math.ceil(seconds) + 1).fill(0);
  const started = performance.now();
  const end = started + seconds * 1000;
  let lastDone = started;
  const fail = (what: string, error: unknown) => {
    const code = error instanceof KvError ? error.code : 'EXCEPTION';
    errors.set(code, (errors.get(code) ?? 0) + 1);
    if (firstErrors.length < 10) firstErrors.push(`${what}: ${code}: ${(error as Error).message}`);
  };
  const worker = async (client: Client) => {
    while (performance.now() < end) {
      const key = keyOf(Math.floor(Math.random() * keys));
      const isGet = Math.random() < 0.5;
      const t0 = performance.now();
      try {
        if (isGet) {
          const attrs = await client.get(spaceName, key);
          const t1 = performance.now();
          gets.add(t1 - t0);
          lastDone = t1;
          const v = attrs?.v;
          if (!(v instanceof Uint8Array) || v.length !== value.length) fail(`get ${key}`, new Error(`wrong value: ${attrs === undefined ? 'absent' : typeof v}`));
        } else {
          await client.put(spaceName, key, { v: value });
          const t1 = performance.now();
          puts.add(t1 - t0);
          lastDone = t1;
        }
        const bucket = Math.floor((lastDone - started) / 1000);
        if (bucket < perSecond.length) perSecond[bucket]!++;
      } catch (error) {
        lastDone = performance.now();
        fail(`${isGet ? 'get' : 'put'} ${key}`, error);
      }
    }
  };
  const workers: Array<Promise<void>> = [];
  for (const client of clients) for (let i = 0; i < inflight; i++) workers.push(worker(client));
  await Promise.all(workers);
  return { seconds: (lastDone - started) / 1000, gets, puts, errors, perSecond: perSecond.slice(0, Math.floor(seconds)), firstErrors };
}

// ---- main ----

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions();
  } catch (error) {
    process.stderr.write(`throughput: ${(error as Error).message} (--help for usage)\n`);
    return 2;
  }
  // A hard bound on the whole run: start, load, the mix (plus every op's own 10 s deadline), stop.
  const watchdogMs = upTimeoutMs + 600_000 + options.seconds * 1000 + 60_000 + stopTimeoutMs;
  const dir = mkdtempSync(join(os.tmpdir(), 'kv-bench-'));
  let cluster: Cluster | undefined;
  const clients: Client[] = [];
  const cleanup = async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    const stop = cluster ? await stopCluster(cluster) : undefined;
    rmSync(dir, { recursive: true, force: true });
    return stop;
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    progress('interrupted; stopping the cluster');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const watchdog = setTimeout(() => {
    progress(`the run exceeded ${watchdogMs} ms; stopping`);
    void cleanup().finally(() => process.exit(2));
  }, watchdogMs);
  watchdog.unref();

  try {
    const ports = await freePorts(daemonCount);
    progress(`starting kv up in ${dir} (coordinator :${ports.coordinator}, daemons :${ports.daemonBase}..${ports.daemonBase + daemonCount - 1})`);
    const upStarted = performance.now();
    cluster = startCluster(dir, ports.coordinator, ports.daemonBase, daemonCount);
    await waitUntilUp(cluster);
    progress(`cluster up in ${Math.round(performance.now() - upStarted)} ms`);

    for (let i = 0; i < options.clients; i++) clients.push(await Client.connect(cluster.coordinator));
    const afterAdd = await clients[0]!.addSpace(spaceName, { partitions });
    const servers = afterAdd.servers.map((s) => `${s.id}@${s.address}:${s.state}`);
    if (afterAdd.servers.length !== daemonCount) {
      throw new Error(`the cluster has ${afterAdd.servers.length} servers, not ${daemonCount}: ${servers.join(', ')}`);
    }
    // Let every client see the new space before the load starts (they follow config pushes).
    const deadline = Date.now() + 10_000;
    while (clients.some((c) => !c.currentConfig.spaces.some((s) => s.name === spaceName))) {
      if (Date.now() > deadline) throw new Error('the clients did not see the new space within 10 s');
      await pause(10);
    }

    const value = randomBytes(options.valueBytes);
    progress(`loading ${options.keys} keys of ${options.valueBytes} bytes, ${loadConcurrency} in flight`);
    const loaded = await load(clients, options.keys, value);
    const loadRate = options.keys / loaded.seconds;
    progress(`loaded ${options.keys} keys in ${loaded.seconds.toFixed(1)} s (${Math.round(loadRate)} keys/s)`);
    const loadErrors = [...loaded.errors.values()].reduce((a, b) => a + b, 0);

    progress(`running 50/50 get/put for ${options.seconds} s: ${options.clients} clients x ${options.inflight} in flight`);
    const loadAverageBefore = os.loadavg().map((n) => round(n, 2));
    const cpuBefore = sampleCpu(cluster);
    const jiffiesBefore = machineJiffies();
    const run = await mix(clients, options.inflight, options.keys, value, options.seconds);
    const jiffiesAfter = machineJiffies();
    const cpuAfter = sampleCpu(cluster);
    const all = Latencies.merge(run.gets, run.puts);
    const ops = all.length;
    const errorCount = [...run.errors.values()].reduce((a, b) => a + b, 0);
    const cpu = cpuDuring(cpuBefore, cpuAfter, run.seconds);
    // The whole machine's CPU during the run, in % of one core (so 2 cores = 200%), and what our processes
    // do not account for: other work on the machine.
    const busyPercent = machineBusyPercent(jiffiesBefore, jiffiesAfter);
    const oursPercent = cpu.reduce((sum, c) => sum + c.cpuPercent, 0);
    // CPU time per operation: a figure that depends much less on what else the machine runs than ops/s does.
    const cpuSecondsOf = (match: (name: string) => boolean) => cpu.filter((c) => match(c.name)).reduce((sum, c) => sum + c.cpuSeconds, 0);
    const perOp = (seconds: number) => (ops > 0 ? round((seconds * 1e6) / ops, 0) : NaN);
    const cpuMicrosPerOp = {
      clients: perOp(cpuSecondsOf((n) => n.startsWith('bench'))),
      daemons: perOp(cpuSecondsOf((n) => n.startsWith('daemon'))),
      total: perOp(cpuSecondsOf(() => true)),
    };
    const machineCpu = {
      cores: os.cpus().length,
      busyPercent,
      benchAndClusterPercent: oursPercent,
      cpuMicrosPerOp,
      otherProcessesPercent: busyPercent === undefined ? undefined : Math.max(0, busyPercent - oursPercent),
      loadAverageBefore,
    };
    const problemsBeforeStop = cluster.problemCount;
    // The config should not have changed during the run (no daemon lost, nothing moved).
    const afterRun = await withTimeout(clients[0]!.showConfig(), 5_000).catch(() => undefined);
    const config = {
      versionAfterAddSpace: afterAdd.version,
      versionAfterRun: afterRun?.version,
      serversAfterRun: afterRun?.servers.map((s) => `${s.id}@${s.address}:${s.state}`),
    };

    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
    progress('stopping the cluster (SIGINT)');
    const stop = await stopCluster(cluster);
    rmSync(dir, { recursive: true, force: true });
    const c = cluster;
    cluster = undefined;

    const result = {
      command: `node dist/bench/throughput.js ${process.argv.slice(2).join(' ')}`.trim(),
      machine: machine(),
      build: build(),
      options: { ...options, daemons: daemonCount, partitions, loadConcurrency },
      load: { keys: options.keys, seconds: round(loaded.seconds, 2), keysPerSecond: Math.round(loadRate), errors: loadErrors, errorsByCode: Object.fromEntries(loaded.errors) },
      run: {
        seconds: round(run.seconds, 2),
        ops,
        opsPerSecond: Math.round(ops / run.seconds),
        latencyMs: summary(all),
        getLatencyMs: summary(run.gets),
        putLatencyMs: summary(run.puts),
        errors: errorCount,
        errorsByCode: Object.fromEntries(run.errors),
        firstErrors: run.firstErrors,
        opsPerWholeSecond: run.perSecond,
      },
      cpu,
      machineCpu,
      config,
      cluster: {
        warnOrWorseLogLines: problemsBeforeStop,
        warnOrWorseLogLinesIncludingStop: c.problemCount,
        firstProblems: c.problems.slice(0, 10),
        stop: { exitCode: stop.code, signal: stop.signal, ms: Math.round(stop.ms), killed: stop.killed },
      },
    };

    if (options.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else process.stdout.write(table(result));
    const ok = errorCount === 0 && loadErrors === 0 && stop.code === 0 && !stop.killed;
    if (!ok) progress(`FAILED: errors during the run or an unclean stop (see above); cluster log: ${saveLog(c)}`);
    return ok ? 0 : 1;
  } catch (error) {
    progress(`failed: ${(error as Error).stack ?? String(error)}`);
    if (cluster) progress(`cluster stderr (tail):\n${cluster.stderrTail.slice(-3000)}\ncluster log: ${saveLog(cluster)}`);
    await cleanup();
    return 1;
  } finally {
    clearTimeout(watchdog);
  }
}

type Result = {
  command: string;
  machine: ReturnType<typeof machine>;
  build: string;
  options: Options & { daemons: number; partitions: number; loadConcurrency: number };
  load: { keys: number; seconds: number; keysPerSecond: number; errors: number };
  run: {
    seconds: number; ops: number; opsPerSecond: number; errors: number; errorsByCode: Record<string, number>; firstErrors: string[];
    latencyMs: ReturnType<typeof summary>; getLatencyMs: ReturnType<typeof summary>; putLatencyMs: ReturnType<typeof summary>;
    opsPerWholeSecond: number[];
  };
  cpu: Array<{ name: string; pid: number; cpuSeconds: number; cpuPercent: number }>;
  machineCpu: { cpuMicrosPerOp: { clients: number; daemons: number; total: number }; cores: number; busyPercent: number | undefined; benchAndClusterPercent: number; otherProcessesPercent: number | undefined; loadAverageBefore: number[] };
  config: { versionAfterAddSpace: number; versionAfterRun: number | undefined; serversAfterRun: string[] | undefined };
  cluster: { warnOrWorseLogLines: number; firstProblems: string[]; stop: { exitCode: number | null; signal: string | null; ms: number; killed: boolean } };
};

function table(r: Result): string {
  const m = r.machine;
  const o = r.options;
  const rows: Array<[string, string]> = [
    ['machine', `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}`],
    ['code (git describe)', r.build],
    ['load average (before run / at end)', `${r.machineCpu.loadAverageBefore.join(' ')} / ${m.loadAverage.join(' ')}`],
    ['cluster', `${o.daemons} daemons, space "${spaceName}" with ${o.partitions} partitions`],
    ['workload', `50/50 get/put, uniform over ${o.keys} keys, ${o.valueBytes}-byte values, ${o.clients} clients x ${o.inflight} in flight, ${o.seconds} s`],
    ['load', `${r.load.keys} keys in ${r.load.seconds} s = ${r.load.keysPerSecond} keys/s (${r.load.errors} errors)`],
    ['ops', `${r.run.ops} in ${r.run.seconds} s`],
    ['ops/s', String(r.run.opsPerSecond)],
    ['latency ms p50 / p99 / p999 / max', fmt(r.run.latencyMs)],
    ['  get', fmt(r.run.getLatencyMs)],
    ['  put', fmt(r.run.putLatencyMs)],
    ['ops in each second', r.run.opsPerWholeSecond.join(' ')],
    ['errors', r.run.errors === 0 ? '0' : `${r.run.errors} ${JSON.stringify(r.run.errorsByCode)}`],
    ['CPU during the run (% of a core)', r.cpu.map((c) => `${c.name} ${c.cpuPercent}%`).join(', ')],
    ['CPU per op, µs (clients / daemons / all)', `${r.machineCpu.cpuMicrosPerOp.clients} / ${r.machineCpu.cpuMicrosPerOp.daemons} / ${r.machineCpu.cpuMicrosPerOp.total}`],
    ['machine CPU during the run', r.machineCpu.busyPercent === undefined ? 'n/a' :
      `${r.machineCpu.busyPercent}% of ${r.machineCpu.cores * 100}% busy; bench+cluster ${r.machineCpu.benchAndClusterPercent}%, other processes ~${r.machineCpu.otherProcessesPercent}%`],
    ['config version (after add-space / after run)', `${r.config.versionAfterAddSpace} / ${r.config.versionAfterRun ?? 'unknown'}`],
    ['cluster warn/error log lines', String(r.cluster.warnOrWorseLogLines)],
    ['cluster stop (SIGINT)', `exit ${r.cluster.stop.exitCode}${r.cluster.stop.signal ? ` (${r.cluster.stop.signal})` : ''} after ${r.cluster.stop.ms} ms${r.cluster.stop.killed ? ', KILLED' : ''}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  for (const e of r.run.firstErrors) lines.push(`  error: ${e}`);
  for (const p of r.cluster.firstProblems) lines.push(`  cluster log: ${p}`);
  return lines.join('\n') + '\n';
}

const fmt = (s: ReturnType<typeof summary>) => `${s.p50} / ${s.p99} / ${s.p999} / ${s.max}  (${s.count} ops)`;

process.exitCode = await main();

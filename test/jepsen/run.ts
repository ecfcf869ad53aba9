// One Jepsen run: a fresh cluster of real processes, client processes recording a history, a nemesis injecting
// faults meanwhile, a final read of every key once healed, and the linearizability checker's verdict.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../../shared/client.js';
import { freePort, processStartMs, startCoordinator, startDaemon, tempDir, waitFor, type CoordinatorHandle, type TestLike } from '../helpers/cluster.js';
import { startEtcd } from '../helpers/etcd.js';
import { coordinatorArgs, launchCoordinator } from '../helpers/replicated.js';
import { checkHistory } from './checker.js';
import type { Op } from './history.js';
import {
  CoordinatorProxy, nemesisNamed, waitHealthy,
  type JepsenCluster, type JepsenDaemon, type NemesisReport,
} from './nemesis.js';
import { execute, mulberry32, now, type WorkerArgs } from './worker.js';

const workerScript = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

export interface JepsenOptions {
  /** A nemesis name (see nemesis.ts), or 'none'. */
  nemesis: string;
  /** Seconds of workload. */
  seconds: number;
  seed: number;
  workers?: number;
  threadsPerWorker?: number;
  keys?: number;
  partitions?: number;
  /** The workers' client deadline per operation. */
  timeoutMs?: number;
  /** Each client thread waits up to this long between operations. */
  thinkMs?: number;
  /** And about this long after one that did not succeed (see WorkerArgs). */
  errorBackoffMs?: number;
  heartbeat?: { intervalMs: number; timeoutMs: number };
  /** The checker's search budget per key (its default if absent); a key that exhausts it is `unknown`. */
  maxStates?: number;
}

export type Verdict = 'linearizable' | 'not linearizable' | 'unknown';

export interface JepsenReport {
  nemesis: string;
  seed: number;
  seconds: number;
  ops: number;
  okOps: number;
  infoOps: number;
  failOps: number;
  /** Keys the checker checked, and the operations it searched. */
  keys: number;
  checkedOps: number;
  verdict: Verdict;
  /** One line per failing key, then the checker's explanations. */
  summary: string;
  /** Operations per error code. */
  errors: Record<string, number>;
  nemesisReport: NemesisReport;
  /** What the harness and the nemesis did, in ms since the workload began. */
  timeline: string[];
  /** Where the history was kept, when it was not linearizable (or the checker could not tell). */
  historyFile?: string;
  checkMs: number;
}

const defaults = {
  workers: 3,
  threadsPerWorker: 3,
  keys: 6,
  partitions: 6,
  timeoutMs: 3_000,
  thinkMs: 4,
  errorBackoffMs: 100,
  heartbeat: { intervalMs: 200, timeoutMs: 1_500 },
};

const space = 'jepsen';
const warmupMs = 1_000;
/** The nemesis stops starting fault cycles this long before the workload ends, so the end of the run is calm. */
const calmTailMs = 1_500;
/** A process number for the final reads, outside every worker's range. */
const finalReader = 9_999;

function spawnWorker(t: TestLike, args: WorkerArgs) {
  const debug = process.env.KV_JEPSEN_WORKER_DEBUG === '1';
  const child = spawn(process.execPath, [workerScript, JSON.stringify(args)], { stdio: ['pipe', 'ignore', 'pipe'], env: process.env });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    if (debug) process.stderr.write(chunk);
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  t.teardown(async () => {
    if (exitCode === undefined) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  child.stdin.on('error', () => {}); // a worker that died early: reported by its exit code
  return {
    exited,
    stderr: () => stderr,
    ready: () => stderr.includes('"msg":"ready"'),
    exitCode: () => exitCode,
    go: () => child.stdin.end('go\n'),
  };
}

function readHistory(file: string): Op[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as Op);
}

/** After healing: one successful get per key (retried as long as it takes, within a deadline), kept as ops. */
async function finalReads(coordinator: string, keys: string[], deadlineMs: number): Promise<Op[]> {
  const client = await Client.connect(coordinator, { timeoutMs: 5_000 });
  const ops: Op[] = [];
  try {
    for (const key of keys) {
      let last: Op | undefined;
      await waitFor(() => `a final read of ${key} to succeed (the last failed: ${last?.error})`, async () => {
        last = await execute(client, space, { process: finalReader, key, kind: 'get', start: now(), end: 0, outcome: 'info' });
        ops.push(last);
        return last.outcome === 'ok';
      }, deadlineMs, 200);
    }
  } finally {
    await client.close();
  }
  return ops;
}

export async function runJepsen(t: TestLike, options: JepsenOptions): Promise<JepsenReport> {
  const o = { ...defaults, ...options };
  const nemesis = nemesisNamed(o.nemesis);
  const random = mulberry32(o.seed ^ 0x9e3779b9);
  const timeline: string[] = [];
  let origin = now();
  const trace = process.env.KV_JEPSEN_TRACE === '1';
  const event = (what: string) => {
    const line = `${((now() - origin) / 1000).toFixed(2).padStart(6)}s ${what}`;
    timeline.push(line);
    if (trace) process.stderr.write(`jepsen ${nemesis.name} seed ${o.seed}: ${line}\n`);
  };

  let replicated: JepsenCluster['replicated'];
  let coordinator: CoordinatorHandle;
  if (nemesis.needsEtcd) {
    // Three coordinators on a real etcd; the first leads (it campaigns alone), the others follow.
    const etcd = await startEtcd();
    t.teardown(() => etcd.close());
    const prefix = `/kv/jepsen-${o.seed}`;
    const ttlSeconds = 2;
    const argsOf = (_: number, port: number) => coordinatorArgs(etcd, prefix, port, ttlSeconds, o.heartbeat);
    const first = await launchCoordinator(t, argsOf(0, 0));
    await first.proc.waitForLog('won the leader election', processStartMs);
    const coordinators = [first, await launchCoordinator(t, argsOf(1, 0)), await launchCoordinator(t, argsOf(2, 0))];
    replicated = { etcd, coordinators, argsOf, ttlSeconds };
    coordinator = { proc: first.proc, address: coordinators.map((c) => c.address).join(','), port: first.port, dataDir: '' };
  } else {
    coordinator = await startCoordinator(t, { heartbeat: o.heartbeat });
  }
  // Started now, they boot while the daemons do; they connect, then wait for the go.
  const keys = Array.from({ length: o.keys }, (_, i) => `k${i}`);
  const outDir = tempDir(t, 'kv-jepsen-');
  const durationMs = o.seconds * 1000;
  const workers = Array.from({ length: o.workers }, (_, w) => {
    const args: WorkerArgs = {
      coordinator: coordinator.address, space, keys, threads: o.threadsPerWorker,
      processBase: (w + 1) * 100, durationMs, seed: o.seed * 1_000 + w, timeoutMs: o.timeoutMs,
      thinkMs: o.thinkMs, errorBackoffMs: o.errorBackoffMs, out: join(outDir, `worker-${w}.jsonl`), waitForGo: true,
    };
    return { args, process: spawnWorker(t, args) };
  });

  let proxy: CoordinatorProxy | undefined;
  if (nemesis.needsProxy) {
    proxy = await CoordinatorProxy.start(coordinator.address);
    t.teardown(() => proxy!.close());
  }
  // In front of daemons[0]'s own port: every other daemon and every client reaches it through this proxy (it
  // registers the proxy's address), while it reaches the coordinator directly.
  let peerProxy: CoordinatorProxy | undefined;
  let peerPort = 0;
  if (nemesis.needsPeerProxy) {
    peerPort = await freePort();
    peerProxy = await CoordinatorProxy.start(`127.0.0.1:${peerPort}`);
    t.teardown(() => peerProxy!.close());
  }
  const daemons: JepsenDaemon[] = await Promise.all(
    Array.from({ length: nemesis.daemons }, async (_, i) => {
      const via = i === 0 && proxy ? proxy.address : coordinator.address;
      const behind = i === 0 && peerProxy ? { port: peerPort, args: ['--advertise', peerProxy.address] } : {};
      return { ...(await startDaemon(t, via, behind)), coordinator: via };
    }),
  );
  const probe = await Client.connect(coordinator.address, { subscribe: false, timeoutMs: 2_000 });
  t.teardown(() => probe.close());
  const cluster: JepsenCluster = {
    t, space, tolerate: 1, heartbeat: o.heartbeat, coordinator, daemons, probe, event,
    ...(proxy ? { proxy, proxied: 0 } : {}),
    ...(peerProxy ? { peerProxy } : {}),
    ...(replicated ? { replicated } : {}),
  };
  await waitFor(`${daemons.length} available daemons`, async () =>
    (await probe.showConfig()).servers.filter((s) => s.state === 'available').length === daemons.length);
  await probe.addSpace(space, { partitions: o.partitions, tolerate: cluster.tolerate });
  await waitHealthy(cluster);

  await waitFor('every worker to be connected', () => {
    const gone = workers.findIndex(({ process: p }) => p.exitCode() !== undefined);
    if (gone >= 0) throw new Error(`worker ${gone} exited: ${workers[gone]!.process.stderr().slice(-1_000)}`);
    return workers.every(({ process: p }) => p.ready());
  }, 30_000);
  for (const { process: p } of workers) p.go();
  const workloadEnds = Date.now() + durationMs;
  origin = now();
  event(`workload starts: ${o.workers} workers × ${o.threadsPerWorker} threads, ${o.keys} keys, nemesis ${nemesis.name}`);

  // The nemesis runs while the workload does; a failure in it is reported after the workers are done.
  let nemesisError: unknown;
  const nemesisDone = (async () => {
    await new Promise((resolve) => setTimeout(resolve, warmupMs));
    event(`nemesis ${nemesis.name} starts`);
    try {
      return await nemesis.run(cluster, workloadEnds - calmTailMs, random);
    } catch (error) {
      nemesisError = error;
      event(`nemesis failed: ${(error as Error).message}`);
      return { name: nemesis.name, cycles: 0, effective: false, notes: [`failed: ${(error as Error).message}`] };
    } finally {
      event(`nemesis ${nemesis.name} ends`);
    }
  })();

  const workerBoundMs = durationMs + 3 * o.timeoutMs + 20_000;
  const codes = await Promise.all(workers.map(({ process: p }, w) => waitFor(`worker ${w} to finish`, () => p.exited, workerBoundMs)));
  event('workers done');
  const nemesisReport = await nemesisDone;
  codes.forEach((code, w) => {
    if (code !== 0) throw new Error(`worker ${w} exited with ${code}: ${workers[w]!.process.stderr().slice(-1_000)}`);
  });
  if (nemesisError) throw nemesisError;

  // Whatever the nemesis did is over: the final reads see what the cluster kept.
  await waitHealthy(cluster);
  const history: Op[] = workers.flatMap(({ args }) => readHistory(args.out!));
  history.push(...(await finalReads(coordinator.address, keys, 30_000)));
  event('final reads done');

  if (process.env.KV_JEPSEN_DUMP) {
    writeFileSync(process.env.KV_JEPSEN_DUMP, history.map((op) => JSON.stringify(op)).join('\n') + '\n');
  }
  const checkStarted = performance.now();
  const verdict = checkHistory(history, o.maxStates === undefined ? {} : { maxStates: o.maxStates });
  const checkMs = Math.round(performance.now() - checkStarted);
  const unknown = verdict.failures.length > 0 && verdict.failures.every((f) => f.unknown);
  const errors: Record<string, number> = {};
  for (const op of history) if (op.error) errors[op.error] = (errors[op.error] ?? 0) + 1;

  const report: JepsenReport = {
    nemesis: nemesis.name,
    seed: o.seed,
    seconds: o.seconds,
    ops: history.length,
    okOps: history.filter((op) => op.outcome === 'ok').length,
    infoOps: history.filter((op) => op.outcome === 'info').length,
    failOps: history.filter((op) => op.outcome === 'fail').length,
    keys: verdict.keys,
    checkedOps: verdict.checked,
    verdict: verdict.ok ? 'linearizable' : unknown ? 'unknown' : 'not linearizable',
    summary: verdict.summary,
    errors,
    nemesisReport,
    timeline,
    checkMs,
  };
  if (!verdict.ok) {
    // Outside the run's temp dirs (deleted at teardown), so a violation can be studied afterwards.
    const dir = mkdtempSync(join(tmpdir(), `kv-jepsen-${nemesis.name}-seed${o.seed}-`));
    report.historyFile = join(dir, 'history.jsonl');
    writeFileSync(report.historyFile, history.map((op) => JSON.stringify(op)).join('\n') + '\n');
    writeFileSync(join(dir, 'report.txt'), [
      `nemesis ${nemesis.name}, seed ${o.seed}, ${o.seconds} s: ${report.verdict}`,
      `timeline (origin = ${origin.toFixed(1)} ms wall clock; the checker's times are relative to each key's first op):`,
      ...timeline.map((line) => `  ${line}`),
      '',
      verdict.summary,
    ].join('\n') + '\n');
  }
  return report;
}

/** One line for a run, as the CLI and the tests print it. */
export function describeRun(r: JepsenReport): string {
  const where = r.historyFile ? ` history: ${r.historyFile}` : '';
  return `${r.nemesis} seed=${r.seed} ${r.seconds}s: ${r.ops} ops (${r.okOps} ok, ${r.infoOps} info, ${r.failOps} fail), ` +
    `${r.keys} keys, ${r.checkedOps} checked in ${r.checkMs} ms, nemesis ${r.nemesisReport.cycles} cycles: ${r.verdict}${where}`;
}

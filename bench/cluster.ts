// Real kv processes for the benchmarks: free ports, a whole local cluster with `kv up` (started, waited for,
// stopped with SIGINT, its process group killed as a last resort, its log saved), and single kv processes
// (a coordinator, a daemon, a CLI command) with their JSON log lines parsed. Every wait has a deadline.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const kvScript = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'kv.js');

export const upTimeoutMs = 60_000;
export const stopTimeoutMs = 30_000;

export const progress = (text: string) => process.stderr.write(`[bench] ${text}\n`);
export const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The promise's value, or undefined after ms; the timer never outlives the promise. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- free ports ----

/** Binds `port` on loopback (0: any) and returns the bound server, or undefined when it is taken. */
function bind(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
  });
}

const portOf = (server: Server): number => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
};

const closeAll = (servers: Server[]) => Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));

/** One free loopback port (free when this resolves: another process may still take it before it is used). */
export async function freePort(): Promise<number> {
  const server = await bind(0);
  if (!server) throw new Error('could not bind a free port');
  const port = portOf(server);
  await closeAll([server]);
  return port;
}

/** One free port for the coordinator and `count` consecutive free ports for the daemons (kv up numbers them). */
export async function freePorts(count: number): Promise<{ coordinator: number; daemonBase: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const held: Server[] = [];
    try {
      const coord = await bind(0);
      if (!coord) continue;
      held.push(coord);
      const first = await bind(0);
      if (!first) continue;
      held.push(first);
      const base = portOf(first);
      if (base + count - 1 > 65535) continue;
      let ok = true;
      for (let i = 1; i < count && ok; i++) {
        const next = await bind(base + i);
        if (next) held.push(next);
        else ok = false;
      }
      if (ok) return { coordinator: portOf(coord), daemonBase: base };
    } finally {
      await closeAll(held);
    }
  }
  throw new Error('could not find free ports in 50 attempts');
}

// ---- the cluster (kv up) ----

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Cluster {
  process: ChildProcess;
  coordinator: string;
  dir: string;
  exited: Promise<ExitStatus>;
  exitStatus: ExitStatus | undefined;
  stdout: string;
  /** The last 64 KiB of the cluster's stderr (every process's logs). */
  stderrTail: string;
  /** The cluster's whole stderr, up to 32 MiB: saved to a file when the run fails. */
  stderrAll: string[];
  stderrBytes: number;
  /** Log lines at warn level or above (pino: 40 warn, 50 error, 60 fatal), the first 50 of them. */
  problems: string[];
  problemCount: number;
}

/**
 * Starts `kv up` with `daemons` daemons, their data under `dir` (daemon-1 … daemon-N, coordinator). `nodeArgs`
 * are node's own flags for kv up and, through it, for every kv process (e.g. --cpu-prof); `upArgs` more flags for
 * kv up (--tls-dir).
 */
export function startCluster(dir: string, coordinatorPort: number, daemonBase: number, daemons = 3, nodeArgs: string[] = [], upArgs: string[] = []): Cluster {
  // Its own process group, so that a hung cluster can be killed as a whole as a last resort.
  const child = spawn(
    process.execPath,
    [...nodeArgs, kvScript, 'up', '--dir', dir, '--daemons', String(daemons), '--port', String(coordinatorPort), '--daemon-port', String(daemonBase), ...upArgs],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, KV_LOG_LEVEL: process.env.KV_LOG_LEVEL ?? 'info' } },
  );
  const cluster: Cluster = {
    process: child,
    coordinator: `127.0.0.1:${coordinatorPort}`,
    dir,
    exitStatus: undefined,
    exited: new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        cluster.exitStatus = { code, signal };
        resolve({ code, signal });
      }),
    ),
    stdout: '',
    stderrTail: '',
    stderrAll: [],
    stderrBytes: 0,
    problems: [],
    problemCount: 0,
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (cluster.stdout += chunk));
  let partial = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    cluster.stderrTail = (cluster.stderrTail + chunk).slice(-65536);
    if (cluster.stderrBytes < 32 * 2 ** 20) {
      cluster.stderrAll.push(chunk);
      cluster.stderrBytes += chunk.length;
    }
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let level = 0;
      try {
        level = Number((JSON.parse(line) as { level?: unknown }).level) || 0;
      } catch {
        level = line.trim() === '' ? 0 : 50; // not a log line: a CLI error message
      }
      if (level >= 40) {
        cluster.problemCount++;
        if (cluster.problems.length < 50) cluster.problems.push(line.slice(0, 500));
      }
    }
  });
  return cluster;
}

export async function waitUntilUp(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + upTimeoutMs;
  while (!/kv cluster \S+ is up/.test(cluster.stdout)) {
    if (cluster.exitStatus) {
      throw new Error(`kv up exited (${JSON.stringify(cluster.exitStatus)}) before the cluster was up:\n${cluster.stderrTail.slice(-2000)}`);
    }
    if (Date.now() > deadline) throw new Error(`the cluster was not up within ${upTimeoutMs} ms:\n${cluster.stderrTail.slice(-2000)}`);
    await pause(50);
  }
}

/** SIGINT, then a bounded wait; a cluster that does not stop in time has its whole process group killed. */
export async function stopCluster(cluster: Cluster): Promise<ExitStatus & { ms: number; killed: boolean }> {
  const started = performance.now();
  if (!cluster.exitStatus) cluster.process.kill('SIGINT');
  const status = await withTimeout(cluster.exited, stopTimeoutMs);
  if (status) {
    killGroup(cluster.process, 'SIGKILL'); // in case a child outlived kv up (it should not)
    return { ...status, ms: performance.now() - started, killed: false };
  }
  progress(`kv up did not exit within ${stopTimeoutMs} ms of SIGINT; killing its process group`);
  killGroup(cluster.process, 'SIGKILL');
  const killed = (await withTimeout(cluster.exited, 5_000)) ?? { code: null, signal: null };
  return { ...killed, ms: performance.now() - started, killed: true };
}

/** Signals the process group led by `child` (started with detached: true). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  const pid = child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/** Writes a log next to the temp dirs (not under a temp dir, which is removed); returns its path. */
export function saveLog(cluster: Pick<Cluster, 'stderrAll'>, prefix = 'kv-bench'): string {
  const path = join(os.tmpdir(), `${prefix}-${Date.now()}-${process.pid}.log`);
  try {
    writeFileSync(path, cluster.stderrAll.join(''));
    return path;
  } catch (error) {
    return `(not saved: ${(error as Error).message})`;
  }
}

// ---- single kv processes ----

/** Every single kv process started and not yet known to have exited, for a last-resort cleanup. */
const running = new Set<KvProcess>();

/**
 * One kv process (`node dist/cli/kv.js ARGS`) in its own process group, its stdout kept, its stderr's JSON log
 * lines parsed. Not a log line (a CLI error message) is kept in the stderr tail.
 */
export class KvProcess {
  readonly child: ChildProcess;
  readonly startedAt = performance.now();
  readonly logs: Array<Record<string, unknown>> = [];
  stdout = '';
  stderrTail = '';
  readonly stderrAll: string[] = [];
  private stderrBytes = 0;
  exitStatus: ExitStatus | undefined;
  exitedAt: number | undefined;
  readonly exited: Promise<ExitStatus>;

  constructor(
    readonly name: string,
    readonly args: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn(process.execPath, [kvScript, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, KV_LOG_LEVEL: process.env.KV_LOG_LEVEL ?? 'info', ...env },
    });
    running.add(this);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitedAt = performance.now();
        this.exitStatus = { code, signal };
        running.delete(this);
        resolve({ code, signal });
      }),
    );
    this.child.once('error', (error) => {
      this.stderrTail += `\nspawn error: ${error.message}`;
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      if (this.stdout.length < 16 * 2 ** 20) this.stdout += chunk;
    });
    let partial = '';
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-65536);
      if (this.stderrBytes < 16 * 2 ** 20) {
        this.stderrAll.push(chunk);
        this.stderrBytes += chunk.length;
      }
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          if (this.logs.length < 100_000) this.logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      }
    });
  }

  /** The first log line with this msg, waiting at most timeoutMs; fails early if the process exits. */
  async waitForLog(msg: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find((l) => l.msg === msg);
      if (found) return found;
      if (this.exitStatus) throw new Error(`${this.name} exited (${JSON.stringify(this.exitStatus)}) before logging "${msg}":\n${this.stderrTail.slice(-2000)}`);
      if (performance.now() > deadline) throw new Error(`${this.name} did not log "${msg}" within ${timeoutMs} ms:\n${this.stderrTail.slice(-2000)}`);
      await pause(10);
    }
  }

  /** Waits for the exit at most timeoutMs; then kills the process group and throws. */
  async finish(timeoutMs: number): Promise<ExitStatus> {
    const status = await withTimeout(this.exited, timeoutMs);
    if (status) return status;
    killGroup(this.child, 'SIGKILL');
    await withTimeout(this.exited, 5_000);
    throw new Error(`${this.name} did not finish within ${timeoutMs} ms (killed):\n${this.stderrTail.slice(-2000)}`);
  }

  /** A signal (SIGTERM: a clean shutdown), a bounded wait, then SIGKILL of its process group. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = stopTimeoutMs): Promise<ExitStatus & { killed: boolean }> {
    if (!this.exitStatus) this.child.kill(signal);
    const status = await withTimeout(this.exited, timeoutMs);
    if (status) {
      killGroup(this.child, 'SIGKILL');
      return { ...status, killed: false };
    }
    progress(`${this.name} did not exit within ${timeoutMs} ms of ${signal}; killing its process group`);
    killGroup(this.child, 'SIGKILL');
    const killed = (await withTimeout(this.exited, 5_000)) ?? { code: null, signal: null };
    return { ...killed, killed: true };
  }
}

/** Kills every single kv process still running (their process groups), e.g. when a run fails. */
export async function killAllKvProcesses(): Promise<void> {
  const all = [...running];
  for (const p of all) killGroup(p.child, 'SIGKILL');
  await Promise.all(all.map((p) => withTimeout(p.exited, 5_000)));
}

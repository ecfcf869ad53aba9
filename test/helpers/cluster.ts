// Real kv processes for tests: a coordinator and daemons on loopback, ephemeral ports, temp dirs. Every wait is
// a condition polled against a deadline. Processes are killed at the end of the test that started them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type ClientOptions } from '../../shared/client.js';
import { GaveUp, waitFor } from './wait-for.js';

// Most tests take their one wait helper from here, with the processes it waits on.
export { GaveUp, waitFor };

export const kvScript = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'kv.js');

/** The subset of a tap Test these helpers use. */
export interface TestLike {
  teardown(fn: () => unknown): void;
}

const bind = (port: number) =>
  new Promise<Server | undefined>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
const unbind = (servers: Array<Server | undefined>) =>
  Promise.all(servers.map((s) => s && new Promise((resolve) => s.close(resolve))));

/**
 * `count` consecutive ports that are free right now, for commands that take fixed ports as an operator gives them
 * (kv up's daemons follow its --daemon-port). Probed by binding each, and released just before returning.
 *
 * Chosen below the kernel's ephemeral range (Linux: 32768-60999), not by binding port 0: a port the kernel handed
 * out once it hands out again, to any test's outgoing connection or listener, so a cluster stopped and started
 * again on its fixed ports could find one of them taken in between (seen in CI: kv up's restart, ADDRESS_IN_USE).
 */
const FIXED_PORTS = { low: 20_000, high: 32_000 };

export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = FIXED_PORTS.low + Math.floor(Math.random() * (FIXED_PORTS.high - FIXED_PORTS.low - count));
    const servers = await Promise.all(Array.from({ length: count }, (_, i) => bind(base + i)));
    await unbind(servers);
    if (servers.every((s) => s !== undefined)) return base;
  }
  throw new Error(`found no ${count} consecutive free ports between ${FIXED_PORTS.low} and ${FIXED_PORTS.high}`);
}

/** A port nothing listens on right now (connections to it are refused). */
export const freePort = () => freePortRange(1);

/** A coordinator address nothing listens on right now: a dead entry in a list of coordinators. */
export const closedAddress = async () => `127.0.0.1:${await freePort()}`;

export function tempDir(t: TestLike, prefix = 'kv-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** stderr without the JSON log lines: what a command said to a person. */
export const messageLines = (stderr: string): string[] =>
  stderr.split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try {
      JSON.parse(line);
      return false;
    } catch {
      return true;
    }
  });

export class KvProcess {
  readonly logs: Array<Record<string, unknown>> = [];
  stderr = '';
  stdout = '';
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    let partial = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log line (a CLI error message): kept in stderr
        }
      }
    });
    // Settled once the process has exited and its output is read: 'exit' can come before the last of stderr
    // (a one-line error, then exit). A child that inherited the pipes may hold them open: then 5 s after exit.
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        const done = () => {
          this.exitCode = code ?? (signal ? null : code);
          resolve(code);
        };
        if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) return done();
        const late = setTimeout(done, 5_000);
        child.once('close', () => {
          clearTimeout(late);
          done();
        });
      }),
    );
  }

  waitForLog(msg: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    return waitFor(() => `log "${msg}" (stderr so far: ${this.stderr.slice(-500)})`, () => {
      const line = this.logs.find((l) => l.msg === msg);
      if (!line && this.exitCode !== undefined) throw new GaveUp(`the process exited with ${this.exitCode}`);
      return line;
    }, timeoutMs);
  }

  /** The exit code, once the process has exited; fails (leaving the process to the teardown) if it does not in time. */
  waitForExit(timeoutMs = 30_000): Promise<number | null> {
    return waitFor(() => `the process to exit (stderr so far: ${this.stderr.slice(-500)})`, () => this.exited, timeoutMs);
  }

  /** Sends a signal and waits for the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> {
    if (this.exitCode === undefined) this.child.kill(signal);
    return this.waitForExit(timeoutMs);
  }
}

/** Starts kv: here, or another way (test/helpers/lab.ts: on a host made of namespaces). */
export type KvSpawner = (args: string[], env?: NodeJS.ProcessEnv) => KvProcess;

export function runKvProcess(t: TestLike, args: string[], env: NodeJS.ProcessEnv = {}): KvProcess {
  return runProcess(t, [process.execPath, kvScript, ...args], env);
}

/** Any command (`argv[0]` and its arguments) as a KvProcess: output kept, killed at the test's end. */
export function runProcess(t: TestLike, argv: string[], env: NodeJS.ProcessEnv = {}): KvProcess {
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KV_LOG_LEVEL: 'info', ...env },
  });
  const proc = new KvProcess(child);
  t.teardown(async () => {
    if (proc.exitCode === undefined) {
      child.kill('SIGKILL');
      await proc.exited;
    }
  });
  return proc;
}

/** Runs a short kv command to completion (within `timeoutMs`, else the test fails naming the command). */
export async function kv(t: TestLike, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000) {
  return finished(runKvProcess(t, args, env), args, timeoutMs);
}

/** A short command's exit code and output, once it has exited (within `timeoutMs`, else the test fails naming it). */
export async function finished(proc: KvProcess, args: string[], timeoutMs = 120_000) {
  const code = await proc.waitForExit(timeoutMs).catch((error: Error) => {
    throw new Error(`kv ${args.join(' ')}: ${error.message}`);
  });
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

export interface CoordinatorHandle {
  proc: KvProcess;
  address: string;
  port: number;
  dataDir: string;
}

/**
 * How long a started process may take to listen (and a daemon to register). Starting node takes a second, and over
 * 20 s on a loaded two-core machine (seen with parallel test runs): a start fails only when the process is stuck.
 */
export const processStartMs = 60_000;

/** Heartbeats of a coordinator for tests that watch failures happen: a daemon is declared dead after 1.5 s. */
export const fastHeartbeats = { intervalMs: 200, timeoutMs: 1_500 };

export async function startCoordinator(
  t: TestLike,
  options: {
    dataDir?: string; port?: number; args?: string[]; heartbeat?: { intervalMs: number; timeoutMs: number }; env?: NodeJS.ProcessEnv;
    spawn?: KvSpawner;
  } = {},
): Promise<CoordinatorHandle> {
  const dataDir = options.dataDir ?? join(tempDir(t), 'coordinator');
  // Given here rather than in `args`: yargs turns a flag given twice into an array.
  const heartbeat = options.heartbeat ?? { intervalMs: 500, timeoutMs: 5000 };
  const proc = (options.spawn ?? ((args, env) => runKvProcess(t, args, env)))([
    'coordinator', '--port', String(options.port ?? 0), '--data', dataDir,
    '--heartbeat-interval-ms', String(heartbeat.intervalMs), '--heartbeat-timeout-ms', String(heartbeat.timeoutMs),
    ...(options.args ?? []),
  ], options.env);
  const listening = await proc.waitForLog('listening', processStartMs);
  // With --advertise, what daemons and clients dial.
  return { proc, address: String(listening.advertised ?? listening.address), port: Number(listening.port), dataDir };
}

export interface DaemonHandle {
  proc: KvProcess;
  address: string;
  port: number;
  dataDir: string;
  serverId: string;
}

export async function startDaemon(
  t: TestLike,
  coordinator: string,
  options: { dataDir?: string; port?: number; args?: string[]; env?: NodeJS.ProcessEnv; spawn?: KvSpawner } = {},
): Promise<DaemonHandle> {
  const dataDir = options.dataDir ?? join(tempDir(t), 'daemon');
  const proc = (options.spawn ?? ((args, env) => runKvProcess(t, args, env)))([
    'daemon', '--listen-port', String(options.port ?? 0), '--coordinator', coordinator, '--data', dataDir,
    ...(options.args ?? []),
  ], options.env);
  const listening = await proc.waitForLog('listening', processStartMs);
  const registered = await proc.waitForLog('registered with the coordinator', processStartMs);
  return {
    proc,
    address: String(listening.address),
    port: Number(listening.port),
    dataDir,
    serverId: String(registered.serverId),
  };
}

export interface Cluster {
  coordinator: CoordinatorHandle;
  daemons: DaemonHandle[];
  client(options?: ClientOptions): Promise<Client>;
  /** Waits until the coordinator reports exactly these servers available. */
  waitForAvailable(count: number): Promise<void>;
}

/** A cluster's `client()` (closed at the test's end) and `waitForAvailable()`, given its coordinators. */
export function clientsOf(t: TestLike, coordinators: string): Pick<Cluster, 'client' | 'waitForAvailable'> {
  return {
    async client(clientOptions = {}) {
      const client = await Client.connect(coordinators, clientOptions);
      t.teardown(() => client.close());
      return client;
    },
    async waitForAvailable(count: number) {
      const probe = await Client.connect(coordinators, { subscribe: false });
      try {
        await waitFor(`${count} available daemons`, async () => {
          const config = await probe.showConfig();
          return config.servers.filter((s) => s.state === 'available').length === count;
        });
      } finally {
        await probe.close();
      }
    },
  };
}

export async function startCluster(
  t: TestLike,
  options: { daemons?: number; daemonArgs?: string[]; coordinatorArgs?: string[]; heartbeat?: { intervalMs: number; timeoutMs: number } } = {},
): Promise<Cluster> {
  const coordinator = await startCoordinator(t, {
    ...(options.coordinatorArgs ? { args: options.coordinatorArgs } : {}),
    ...(options.heartbeat ? { heartbeat: options.heartbeat } : {}),
  });
  const daemons = await Promise.all(
    Array.from({ length: options.daemons ?? 3 }, () =>
      startDaemon(t, coordinator.address, options.daemonArgs ? { args: options.daemonArgs } : {}),
    ),
  );
  const cluster: Cluster = { coordinator, daemons, ...clientsOf(t, coordinator.address) };
  await cluster.waitForAvailable(daemons.length);
  return cluster;
}

// A real etcd cluster on loopback for tests: Debian's /usr/bin/etcd, ephemeral ports, a temp dir per cluster with
// a dir per member (its data dir and etcd.log, stdout and stderr). Members can be killed, paused (SIGSTOP) and
// restarted on their data dir. Nothing outlives the test process: each etcd gets the parent-death signal SIGKILL
// (setpriv --pdeathsig, so even a SIGKILLed tap process takes its etcds along), and an exit hook kills the rest.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient } from '../../coordinator/etcd-client.js';
import { GaveUp, waitFor } from './wait-for.js';

export const etcdBinary = '/usr/bin/etcd';
const setpriv = '/usr/bin/setpriv';
const startMs = 20_000;
const exitMs = 10_000;
const logTailLines = 15;

export interface EtcdMember {
  name: string; clientUrl: string; peerUrl: string; dataDir: string; readonly running: boolean;
  kill(signal?: NodeJS.Signals): Promise<void>; stop(): Promise<void>; cont(): Promise<void>; start(): Promise<void>;
}
export interface EtcdCluster { members: EtcdMember[]; endpoints: string[]; leader(): Promise<EtcdMember>; close(): Promise<void> }

const live = new Set<ChildProcess>();
const roots = new Set<string>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

const tail = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-logTailLines).join('\n') : '(no log)');

class Member implements EtcdMember {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly dataDir: string;
  readonly logFile: string;

  constructor(readonly name: string, readonly clientUrl: string, readonly peerUrl: string, dir: string, private readonly args: string[]) {
    mkdirSync(dir);
    this.dataDir = join(dir, 'data');
    this.logFile = join(dir, 'etcd.log');
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  launch(): void {
    if (this.running) throw new Error(`etcd member ${this.name} is already running`);
    const log = openSync(this.logFile, 'a');
    const [command, args] = existsSync(setpriv) ? [setpriv, ['--pdeathsig', 'KILL', etcdBinary, ...this.args]] : [etcdBinary, this.args];
    const child = spawn(command, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    live.add(child);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => live.delete(child));
  }

  /** Waits until the member answers on its client port (alone it may have no leader, so not /health). */
  async start(): Promise<void> {
    this.launch();
    await waitFor(`etcd member ${this.name} to answer on ${this.clientUrl}`, async () => {
      if (!this.running) throw new GaveUp(`it exited; the end of ${this.logFile}:\n${tail(this.logFile)}`);
      return (await fetch(`${this.clientUrl}/version`, { signal: AbortSignal.timeout(1000) })).ok;
    }, startMs);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill(signal);
    if (signal !== 'SIGKILL') child.kill('SIGCONT'); // a paused member would not act on it
    await waitFor(`etcd member ${this.name} to exit on ${signal}`, () => !this.running, exitMs);
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGSTOP');
    await waitFor(`etcd member ${this.name} to be paused`, () => this.state() === 'T', exitMs);
  }

  async cont(): Promise<void> {
    this.child?.kill('SIGCONT');
    await waitFor(`etcd member ${this.name} to run again`, () => this.state() !== 'T', exitMs);
  }

  /** The process state letter from /proc (T: stopped). */
  private state(): string | undefined {
    const stat = readFileSync(`/proc/${this.child?.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  }

  healthy = async (): Promise<boolean> => {
    const response = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
    return response.ok && ((await response.json()) as { health?: string }).health === 'true';
  };
}

/** `count` distinct ports free right now: all bound at once (so no two are the same), then released. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<Server>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

class PortTaken extends Error {}

export async function startEtcd(options: { members?: number; electionTimeoutMs?: number; heartbeatMs?: number } = {}): Promise<EtcdCluster> {
  if (!existsSync(etcdBinary)) throw new Error(`etcd is not installed (${etcdBinary} is missing): apt-get install -y etcd-server`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options.members ?? 3, options.electionTimeoutMs ?? 500, options.heartbeatMs ?? 50);
    } catch (error) {
      // Another process may take a port between our probe and etcd's bind.
      if (!(error instanceof PortTaken) || attempt === 5) throw error;
    }
  }
}

async function startOnce(count: number, electionTimeoutMs: number, heartbeatMs: number): Promise<EtcdCluster> {
  const root = mkdtempSync(join(tmpdir(), 'kv-etcd-'));
  roots.add(root);
  const ports = await freePorts(2 * count);
  const token = `kv-test-${process.pid}-${root.slice(-6)}`;
  const specs = Array.from({ length: count }, (_, i) => ({ name: `e${i + 1}`, clientUrl: `http://127.0.0.1:${ports[2 * i]}`, peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}` }));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  const members = specs.map((s) => new Member(s.name, s.clientUrl, s.peerUrl, join(root, s.name), [
    '--name', s.name, '--data-dir', join(root, s.name, 'data'),
    '--listen-client-urls', s.clientUrl, '--advertise-client-urls', s.clientUrl,
    '--listen-peer-urls', s.peerUrl, '--initial-advertise-peer-urls', s.peerUrl,
    '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', token,
    '--heartbeat-interval', String(heartbeatMs), '--election-timeout', String(electionTimeoutMs),
  ]));
  const close = async () => {
    await Promise.all(members.map((m) => m.kill('SIGKILL')));
    rmSync(root, { recursive: true, force: true });
    roots.delete(root);
  };
  for (const member of members) member.launch();
  try {
    await waitFor(`all ${count} etcd members to be healthy`, async () => {
      const exited = members.find((m) => !m.running);
      if (exited) throw new GaveUp(`etcd member ${exited.name} exited`);
      return (await Promise.all(members.map((m) => m.healthy()))).every(Boolean);
    }, startMs);
  } catch (error) {
    const logs = members.map((m) => ({ name: m.name, tail: tail(m.logFile) }));
    await close();
    if (logs.some((l) => l.tail.includes('address already in use'))) throw new PortTaken();
    throw new Error(`${(error as Error).message}; the end of each member's log:\n${logs.map((l) => `--- ${l.name}\n${l.tail}`).join('\n')}`);
  }
  const client = new EtcdClient(members.map((m) => m.clientUrl));
  return {
    members,
    endpoints: members.map((m) => m.clientUrl),
    close,
    leader: () => waitFor('an etcd leader that its peers agree on', async () => {
      const running = members.filter((m) => m.running);
      const statuses = await Promise.all(running.map((m) => client.status(m.clientUrl).catch(() => undefined)));
      const leaderId = statuses.find((s) => s && s.leader !== '0')?.leader;
      return running.find((_, i) => statuses[i]?.memberId === leaderId);
    }, startMs),
  };
}

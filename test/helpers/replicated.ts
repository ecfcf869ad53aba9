// A cluster with replicated coordinators for tests: a real 3-member etcd (etcd.ts), N coordinator processes on it
// (`kv coordinator --etcd … --prefix …`, a short lease), and daemons given every coordinator's address. Which one
// leads is asked of the coordinators themselves (`leader`), never inferred from logs.
import { randomBytes } from 'node:crypto';
import { Client, type ClientOptions } from '../../shared/client.js';
import { Connection } from '../../shared/connection.js';
import type { LeaderInfo } from '../../shared/protocol.js';
import { startEtcd, type EtcdCluster } from './etcd.js';
import { clientsOf, processStartMs, runKvProcess, startDaemon, waitFor, type DaemonHandle, type KvProcess, type TestLike } from './cluster.js';

export interface ReplicatedCoordinator {
  proc: KvProcess;
  address: string;
  port: number;
}

export interface ReplicatedCluster {
  etcd: EtcdCluster;
  prefix: string;
  /** Every coordinator's address, comma separated: what daemons and clients are given. */
  addresses: string;
  coordinators: ReplicatedCoordinator[];
  daemons: DaemonHandle[];
  /** Starts coordinator `i` again (same port) after it exited; `args`: its extra flags from now on (default: as before). */
  restartCoordinator(i: number, args?: string[]): Promise<ReplicatedCoordinator>;
  /** The index of the coordinator that leads now, waiting (bounded) until exactly one of the running ones says so. */
  leader(timeoutMs?: number): Promise<number>;
  client(options?: ClientOptions): Promise<Client>;
  waitForAvailable(count: number): Promise<void>;
}

export const replicatedHeartbeats = { intervalMs: 200, timeoutMs: 1_500 };

/** What one coordinator says about who leads; undefined if it cannot be asked. */
export async function askLeader(address: string): Promise<LeaderInfo | undefined> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.open(address, () => {}, 1_000, '/', undefined, 'coordinator');
    return await connection.request({ t: 'leader' }, 1_000);
  } catch {
    return undefined;
  } finally {
    connection?.close();
  }
}

/** Starts one coordinator process; resolves once it listens. */
export async function launchCoordinator(t: TestLike, args: string[], env?: NodeJS.ProcessEnv): Promise<ReplicatedCoordinator> {
  const proc = runKvProcess(t, args, env);
  const listening = await proc.waitForLog('listening', processStartMs);
  return { proc, address: String(listening.address), port: Number(listening.port) };
}

export function coordinatorArgs(etcd: Pick<EtcdCluster, 'endpoints'>, prefix: string, port: number, ttlSeconds: number, heartbeat = replicatedHeartbeats, endpoints = etcd.endpoints): string[] {
  return [
    'coordinator', '--port', String(port), '--etcd', endpoints.join(','), '--prefix', prefix, '--etcd-lease-ttl-seconds', String(ttlSeconds),
    '--heartbeat-interval-ms', String(heartbeat.intervalMs), '--heartbeat-timeout-ms', String(heartbeat.timeoutMs),
  ];
}

export async function startReplicated(
  t: TestLike,
  options: {
    coordinators?: number; daemons?: number; ttlSeconds?: number; etcd?: EtcdCluster; env?: NodeJS.ProcessEnv;
    /** Each coordinator's etcd endpoints (a proxy in front of etcd, to cut one off); default: etcd's. */
    endpointsOf?: (i: number) => string[];
    /** Extra flags of every coordinator (a testing fault), until a restart gives others. */
    coordinatorArgs?: string[];
  } = {},
): Promise<ReplicatedCluster> {
  const etcd = options.etcd ?? (await startEtcd());
  if (!options.etcd) t.teardown(() => etcd.close());
  const prefix = `/kv/test-${randomBytes(4).toString('hex')}`;
  const ttlSeconds = options.ttlSeconds ?? 2;
  const extraArgs: string[][] = [];
  const launch = (port: number, i: number): Promise<ReplicatedCoordinator> => {
    extraArgs[i] ??= options.coordinatorArgs ?? [];
    const args = [...coordinatorArgs(etcd, prefix, port, ttlSeconds, replicatedHeartbeats, options.endpointsOf?.(i) ?? etcd.endpoints), ...extraArgs[i]!];
    return launchCoordinator(t, args, options.env);
  };
  // The first leads (it campaigns alone); the others start once it does, so the order of leaders is known.
  const coordinators: ReplicatedCoordinator[] = [await launch(0, 0)];
  await coordinators[0]!.proc.waitForLog('won the leader election', processStartMs);
  for (let i = 1; i < (options.coordinators ?? 3); i++) coordinators.push(await launch(0, i));
  const addresses = coordinators.map((c) => c.address).join(',');
  const daemons = await Promise.all(Array.from({ length: options.daemons ?? 3 }, () => startDaemon(t, addresses)));
  const cluster: ReplicatedCluster = {
    etcd,
    prefix,
    addresses,
    coordinators,
    daemons,
    async restartCoordinator(i, args) {
      if (args) extraArgs[i] = args;
      coordinators[i] = await launch(coordinators[i]!.port, i);
      return coordinators[i]!;
    },
    async leader(timeoutMs = 20_000) {
      let leading: number[] = [];
      await waitFor(() => `exactly one coordinator to lead (leading now: ${leading.join(',') || 'none'})`, async () => {
        const answers = await Promise.all(coordinators.map((c) => (c.proc.exitCode === undefined ? askLeader(c.address) : undefined)));
        leading = answers.flatMap((a, i) => (a?.leading ? [i] : []));
        return leading.length === 1;
      }, timeoutMs, 50);
      return leading[0]!;
    },
    ...clientsOf(t, addresses),
  };
  await cluster.waitForAvailable(daemons.length);
  return cluster;
}

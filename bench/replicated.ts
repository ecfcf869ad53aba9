// Replicated coordinators for the benchmarks: `kv coordinator --etcd …` processes on one prefix of a real etcd
// (test/helpers/etcd.ts, shared with the tests), asked who leads with the `leader` request, never by their logs.
import { Connection } from '../shared/connection.js';
import type { LeaderInfo } from '../shared/protocol.js';
import { KvProcess } from './cluster.js';

export const processStartMs = 30_000;
const leaderAskMs = 1_000;

/** What the coordinator at `address` says about who leads; undefined if it cannot be asked. */
export async function askLeader(address: string): Promise<LeaderInfo | undefined> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.open(address, () => {}, leaderAskMs, '/', undefined, 'coordinator');
    return await connection.request({ t: 'leader' }, leaderAskMs);
  } catch {
    return undefined;
  } finally {
    connection?.close();
  }
}

export interface Coordinator {
  proc: KvProcess;
  address: string;
  port: number;
}

export interface EtcdStoreOptions {
  endpoints: readonly string[];
  prefix: string;
  ttlSeconds: number;
}

/** One coordinator on the etcd store (port 0: any free port), once it listens. */
export async function startEtcdCoordinator(name: string, store: EtcdStoreOptions, port = 0, extra: string[] = []): Promise<Coordinator> {
  const proc = new KvProcess(name, [
    'coordinator', '--port', String(port), '--etcd', store.endpoints.join(','), '--prefix', store.prefix,
    '--etcd-lease-ttl-seconds', String(store.ttlSeconds), ...extra,
  ]);
  const listening = await proc.waitForLog('listening', processStartMs);
  return { proc, address: String(listening.address), port: Number(listening.port) };
}

/**
 * `count` coordinators on one prefix. The first is started alone and leads before the others start, so that the
 * cluster is created once and the first leader is known.
 */
export async function startEtcdCoordinators(count: number, store: EtcdStoreOptions, extra: string[] = []): Promise<Coordinator[]> {
  const first = await startEtcdCoordinator('coordinator-1', store, 0, extra);
  await first.proc.waitForLog('won the leader election', processStartMs);
  const rest = await Promise.all(Array.from({ length: count - 1 }, (_, i) => startEtcdCoordinator(`coordinator-${i + 2}`, store, 0, extra)));
  return [first, ...rest];
}

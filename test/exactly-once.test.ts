// Exactly-once writes across a cluster: a write sent again with the same request id (as the client does after a
// lost answer or a head change) answers the first result and applies once, whichever daemon heads the chain by
// then: the completion record travels down the chain with the write, with the partition in state transfer, and
// survives a restart. Real processes; the retries are sent by hand, so the test decides when they happen.
import t from 'tap';
import { Client } from '../shared/client.js';
import { findServer, type ClusterConfig } from '../shared/config.js';
import { Connection } from '../shared/connection.js';
import { daemonPath, type RequestOf } from '../shared/protocol.js';
import { startCluster, startDaemon, waitFor, type DaemonHandle } from './helpers/cluster.js';

const session = '0a0b0c0d0e0f1011';

/** Sends an atomic_add of 1 to key `k` with request id (session, seq), to the partition's head by `config`. */
async function sendAdd(config: ClusterConfig, seq: number): Promise<unknown> {
  const space = config.spaces.find((s) => s.name === 'x')!;
  const head = findServer(config, space.partitions[0]!.chain[0]!)!;
  const connection = await Connection.open(head.address, () => {}, 5_000, daemonPath(head.id, config.incarnation));
  try {
    const request: { t: 'atomic_add' } & RequestOf<'atomic_add'> = {
      t: 'atomic_add', v: config.version, space: 'x', key: 'k', session, seq, awaiting: 1, deltas: { n: 1 },
    };
    return await connection.request(request, 5_000);
  } finally {
    connection.close();
  }
}

const chainOf = (config: ClusterConfig) => config.spaces.find((s) => s.name === 'x')!.partitions[0]!;

t.test('a write sent again after a head change, a transfer and a restart answers its first result and applies once', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client({ timeoutMs: 20_000 });
  await client.addSpace('x', { partitions: 1, tolerate: 1 });
  const probe = await Client.connect(cluster.coordinator.address, { subscribe: false });
  t.teardown(() => probe.close());
  const byId = (id: string): DaemonHandle => cluster.daemons.find((d) => d.serverId === id)!;

  let config = await probe.showConfig();
  const [headId, tailId] = chainOf(config).chain as [string, string];
  t.same(await sendAdd(config, 1), { n: 1 }, 'the first attempt applies');

  // The head leaves (gracefully, so its chain changes at once); the tail becomes the head.
  await byId(headId).proc.stop('SIGTERM');
  config = await waitFor('the tail to head the chain alone', async () => {
    const c = await probe.showConfig();
    return chainOf(c).chain.join() === tailId ? c : undefined;
  });
  t.same(await sendAdd(config, 1), { n: 1 }, 'sent again to the new head: the first result');
  t.same(await client.get('x', 'k'), { n: 1 }, 'applied once');

  // A new daemon gets the partition by state transfer, then the old tail goes: only the transfer brought it there.
  const fresh = await startDaemon(t, cluster.coordinator.address);
  await waitFor('the new daemon to join the chain', async () => chainOf(await probe.showConfig()).chain.includes(fresh.serverId), 20_000);
  await byId(tailId).proc.stop('SIGKILL');
  config = await waitFor('the new daemon to head the chain alone', async () => {
    const c = await probe.showConfig();
    return chainOf(c).chain.join() === fresh.serverId ? c : undefined;
  }, 20_000);
  t.same(await sendAdd(config, 1), { n: 1 }, 'sent again to a daemon that got the partition by transfer: the first result');
  t.same(await client.get('x', 'k'), { n: 1 }, 'still applied once');

  // And after that daemon restarts on its data.
  await fresh.proc.stop('SIGTERM');
  const again = await startDaemon(t, cluster.coordinator.address, { dataDir: fresh.dataDir });
  config = await waitFor('the restarted daemon to serve the chain', async () => {
    const c = await probe.showConfig();
    return findServer(c, again.serverId)?.state === 'available' && chainOf(c).chain.join() === again.serverId ? c : undefined;
  }, 20_000);
  t.same(await sendAdd(config, 1), { n: 1 }, 'sent again after a restart: the first result');
  t.same(await sendAdd(config, 2), { n: 2 }, 'a new write applies');
  t.same(await client.get('x', 'k'), { n: 2 });
});

t.test('atomic_add through a head leaving with writes in flight: the counter equals the acknowledged adds', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client({ timeoutMs: 20_000 });
  await client.addSpace('x', { partitions: 4, tolerate: 1 });
  const keys = ['a', 'b', 'c', 'd'];
  let acked = 0;
  let failed = 0;
  let stop = false;
  const workers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      try {
        await client.atomicAdd('x', keys[(w + i) % keys.length]!, { n: 1 });
        acked++;
      } catch {
        failed++;
      }
    }
  });
  await waitFor('some adds', () => acked > 300);
  // A fourth daemon joins: partitions move to it, heads leave their chains with batches in flight.
  const joined = await startDaemon(t, cluster.coordinator.address);
  const probe = await Client.connect(cluster.coordinator.address, { subscribe: false });
  t.teardown(() => probe.close());
  await waitFor('partitions to move to the new daemon', async () =>
    (await probe.showConfig()).spaces[0]!.partitions.some((p) => p.chain.includes(joined.serverId)), 30_000);
  await joined.proc.stop('SIGTERM');
  await waitFor('the new daemon to leave every chain', async () =>
    (await probe.showConfig()).spaces[0]!.partitions.every((p) => !p.chain.includes(joined.serverId) && p.joining === undefined), 30_000);
  stop = true;
  await Promise.all(workers);
  const total = (await Promise.all(keys.map((k) => client.get('x', k)))).reduce((sum, v) => sum + ((v?.n as number) ?? 0), 0);
  t.equal(failed, 0, 'no add failed: each was retried through the moves');
  t.equal(total, acked, `the counters add up to the ${acked} acknowledged adds: none lost, none applied twice`);
});

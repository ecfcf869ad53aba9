// Reads stay fresh while partitions move to a joining daemon: the tail a move replaces stays in the chain (writes
// still pass it) until it has acknowledged that it is no longer the tail, so it never answers a read that misses
// an acknowledged write.
import t from 'tap';
import { KvError } from '../shared/errors.js';
import { Connection } from '../shared/connection.js';
import type { ClusterConfig } from '../shared/config.js';
import { startCluster, startDaemon, waitFor } from './helpers/cluster.js';

t.test('a fourth daemon joins a --tolerate 1 space: every read during the moves sees the latest acknowledged write', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('r', { partitions: 12, tolerate: 1 });
  const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
  const acked = new Map<string, number>(keys.map((k) => [k, 0]));
  await Promise.all(keys.map((k) => client.put('r', k, { n: 0 })));

  let stop = false;
  let reads = 0;
  const stale: string[] = [];
  const writers = Array.from({ length: 2 }, async (_, w) => {
    for (let n = 1; !stop; n++) {
      const key = keys[(n * 2 + w) % keys.length]!;
      await client.put('r', key, { n });
      acked.set(key, n);
    }
  });
  const readers = Array.from({ length: 2 }, async (_, r) => {
    for (let i = r; !stop; i += 2) {
      const key = keys[i % keys.length]!;
      const floor = acked.get(key)!;
      try {
        const value = await client.get('r', key);
        reads++;
        if (((value?.n as number | undefined) ?? -1) < floor) stale.push(`${key}: read ${JSON.stringify(value)} after ${floor} was acknowledged`);
      } catch (error) {
        if (!(error instanceof KvError)) throw error;
      }
    }
  });

  // Every config the coordinator publishes, from a subscription of its own: a tail's leaving may last only a few
  // milliseconds, less than any poll of the client's current config would reliably see.
  let sawLeaving = false;
  const leavingIn = (config: ClusterConfig) => config.spaces.some((s) => s.partitions.some((p) => p.leaving !== undefined));
  const watcher = await Connection.open(cluster.coordinator.address, (message) => {
    if (message.t === 'config' && 'config' in message) sawLeaving ||= leavingIn(message.config as ClusterConfig);
  }, 10_000);
  t.teardown(() => watcher.close());
  sawLeaving ||= leavingIn(await watcher.request({ t: 'subscribe' }, 10_000));

  const fourth = await startDaemon(t, cluster.coordinator.address);
  await waitFor('partitions to move to the new daemon, every replaced tail to leave', () => {
    const parts = client.currentConfig.spaces[0]!.partitions;
    const held = parts.filter((p) => p.chain.includes(fourth.serverId)).length;
    return held >= 3 && parts.every((p) => !p.joining && !p.leaving && p.chain.length === 2);
  }, 60_000);
  const readsBefore = reads;
  await waitFor('reads to go on after the moves', () => reads > readsBefore + 50);
  stop = true;
  await Promise.all([...writers, ...readers]);

  t.ok(sawLeaving, 'a replaced tail was seen leaving (staying in the chain before the new tail)');
  t.same(stale.slice(0, 5), [], `none of ${reads} reads was stale`);
});

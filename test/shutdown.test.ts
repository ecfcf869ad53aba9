// SIGTERM while writes are in flight: the daemon finishes them, closes LevelDB and exits 0; every write it
// acknowledged is there after a restart.
import t from 'tap';
import { startCluster, startDaemon, waitFor } from './helpers/cluster.js';

t.test('a daemon stopped under load keeps every acknowledged write', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await cluster.client({ timeoutMs: 5_000 });
  await client.addSpace('s', { partitions: 4 });

  const acknowledged: number[] = [];
  let stop = false;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const n = w * 1_000_000 + i;
      try {
        await client.put('s', `k${n}`, { n });
        acknowledged.push(n);
      } catch {
        return; // the daemon is going away: this write's outcome is not counted either way
      }
    }
  });
  await waitFor(() => `500 acknowledged writes before the SIGTERM (${acknowledged.length} so far)`, () => acknowledged.length >= 500, 30_000, 0);
  const daemon = cluster.daemons[0]!;
  t.equal(await daemon.proc.stop('SIGTERM'), 0, 'exit 0 after finishing in-flight work');
  stop = true;
  await Promise.all(writers);

  await startDaemon(t, cluster.coordinator.address, { dataDir: daemon.dataDir });
  await cluster.waitForAvailable(1);
  const values = await Promise.all(acknowledged.map((n) => client.get('s', `k${n}`)));
  t.equal(values.filter((v, i) => v?.n !== acknowledged[i]).length, 0, `all ${acknowledged.length} acknowledged writes survived`);
});

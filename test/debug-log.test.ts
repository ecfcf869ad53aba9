// KV_LOG_LEVEL=debug tells each step of a chain change and a state transfer, on the coordinator and on both ends.
import t from 'tap';
import { configChanges } from '../coordinator/config-changes.js';
import { newCluster } from '../coordinator/cluster.js';
import type { ClusterConfig } from '../shared/config.js';
import { startCoordinator, startDaemon, waitFor } from './helpers/cluster.js';
import { Client } from '../shared/client.js';

const debug = { KV_LOG_LEVEL: 'debug' };

t.test('a daemon joining a chain: every step is in the debug log', async (t) => {
  const coordinator = await startCoordinator(t, { env: debug });
  const first = await startDaemon(t, coordinator.address, { env: debug });
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 2 }); // one moves to the second daemon when it joins
  await Promise.all(Array.from({ length: 20 }, (_, i) => client.put('s', `k${i}`, { i })));
  const second = await startDaemon(t, coordinator.address, { env: debug });
  await second.proc.waitForLog('transfer received; joining the chain', 30_000);

  // Each process writes its lines as it goes: wait for each (the tail's last "page sent" may come after the
  // joining member's "transfer received"), with a deadline.
  const logged = (proc: typeof first.proc, what: string, match: (line: Record<string, unknown>) => boolean) =>
    waitFor(what, () => proc.logs.some(match), 15_000).then(() => true);
  t.ok(await logged(first.proc, 'the tail says it sends to the joining member', (l) => l.msg === 'chain role changed' && l.to === `sole, sending to ${second.serverId}`));
  for (const msg of ['transfer starting', 'transfer page sent']) t.ok(await logged(first.proc, `the tail logs "${msg}"`, (l) => l.msg === msg));
  t.ok(await logged(first.proc, 'down to the last page', (l) => l.msg === 'transfer page sent' && l.last === true));
  for (const msg of ['a replica of a partition new to this daemon', 'chain role changed', 'transfer page applied']) {
    t.ok(await logged(second.proc, `the joining member logs "${msg}"`, (l) => l.msg === msg));
  }
  t.ok(await logged(coordinator.proc, 'the coordinator logs the join', (l) => l.msg === 'config change' && l.what === 'chain' && String(l.to).includes(`joining ${second.serverId}`)));
  t.ok(await logged(coordinator.proc, 'and the new server', (l) => l.msg === 'config change' && l.what === 'server' && l.serverId === second.serverId && l.to === 'available'));
});

t.test('configChanges names each changed chain and server state, and nothing else', async (t) => {
  const base: ClusterConfig = {
    ...newCluster(),
    servers: [{ id: 'a', address: 'x:1', state: 'available' }, { id: 'b', address: 'x:2', state: 'available' }],
    spaces: [{ id: 1, name: 's', tolerate: 1, partitions: [{ chain: ['a'], since: 1 }, { chain: ['b'], since: 1 }] }],
  };
  const next: ClusterConfig = {
    ...base,
    version: base.version + 1,
    servers: [{ id: 'a', address: 'x:1', state: 'not_available' }, { id: 'b', address: 'x:2', state: 'available' }],
    spaces: [{ id: 1, name: 's', tolerate: 1, partitions: [{ chain: ['b'], since: 2, joining: { server: 'a' } }, { chain: ['b'], since: 1 }] }],
  };
  t.same(configChanges(base, next), [
    { what: 'server', serverId: 'a', from: 'available', to: 'not_available' },
    { what: 'chain', space: 's', partition: 0, from: '[a]', to: '[b] + joining a' },
  ]);
  t.same(configChanges(base, base), []);
});

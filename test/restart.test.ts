// Restarts: a daemon keeps its id and data, the coordinator keeps the config, and clients with an old view of
// the cluster refresh and retry without the caller noticing.
import t from 'tap';
import { Client } from '../shared/client.js';
import { startCluster, startCoordinator, startDaemon, waitFor } from './helpers/cluster.js';

t.test('a daemon restarted with the same --data keeps its id and data, even on a new port', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 8 });
  await Promise.all(Array.from({ length: 200 }, (_, i) => client.put('s', `k${i}`, { i })));

  const old = cluster.daemons[0]!;
  t.equal(await old.proc.stop('SIGTERM'), 0, 'SIGTERM stops the daemon with exit 0');
  await waitFor('the coordinator to see the daemon gone', () =>
    client.showConfig().then((c) => c.servers.find((s) => s.id === old.serverId)?.state === 'shutdown'),
  );
  await t.rejects(
    Promise.all(Array.from({ length: 200 }, (_, i) => client.get('s', `k${i}`))),
    { code: 'UNAVAILABLE' },
    'keys of a stopped daemon answer UNAVAILABLE',
  );

  const back = await startDaemon(t, cluster.coordinator.address, { dataDir: old.dataDir });
  t.equal(back.serverId, old.serverId, 'the same server id');
  t.not(back.port, old.port, 'on a new port');
  await cluster.waitForAvailable(2);
  const values = await Promise.all(Array.from({ length: 200 }, (_, i) => client.get('s', `k${i}`)));
  t.equal(values.filter((v, i) => v?.i !== i).length, 0, 'every key is back');
});

t.test('a coordinator restart keeps the config; daemons and clients reconnect', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  await client.put('s', 'a', { v: 1 });
  const before = await client.showConfig();

  t.equal(await cluster.coordinator.proc.stop('SIGTERM'), 0, 'SIGTERM stops the coordinator with exit 0');
  t.same(await client.get('s', 'a'), { v: 1 }, 'data keeps flowing while the coordinator is down');

  await startCoordinator(t, { dataDir: cluster.coordinator.dataDir, port: cluster.coordinator.port });
  const after = await waitFor('both daemons back', () =>
    client.showConfig().then((c) => (c.servers.filter((s) => s.state === 'available').length === 2 ? c : undefined)),
  );
  t.equal(after.clusterId, before.clusterId, 'same cluster id');
  t.ok(after.version > before.version, 'the version only grows');
  t.same(after.spaces, before.spaces, 'same spaces and partition map');
  t.same(after.servers.map((s) => s.id).sort(), before.servers.map((s) => s.id).sort(), 'same servers');
  await client.put('s', 'b', { v: 2 });
  t.same(await client.get('s', 'b'), { v: 2 }, 'writes work after the restart');
});

t.test('a client with a stale config refreshes and retries transparently', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const admin = await cluster.client();
  // subscribe: false, so this client learns of changes only from the daemons' answers.
  const stale = await Client.connect(cluster.coordinator.address, { subscribe: false });
  t.teardown(() => stale.close());

  await admin.addSpace('late', { partitions: 4 });
  t.equal(stale.currentConfig.spaces.length, 0, 'the stale client does not know the space yet');
  await stale.put('late', 'k', { v: 1 });
  t.same(await stale.get('late', 'k'), { v: 1 }, 'an added space is found after a refresh');

  // Restart every daemon on a new port: the stale client's addresses are all wrong now.
  const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
  await Promise.all(keys.map((k) => admin.put('late', k, { k })));
  const versionBefore = stale.currentConfig.version;
  for (const d of cluster.daemons) {
    t.equal(await d.proc.stop('SIGTERM'), 0);
    await startDaemon(t, cluster.coordinator.address, { dataDir: d.dataDir });
  }
  await cluster.waitForAvailable(2);
  const values = await Promise.all(keys.map((k) => stale.get('late', k)));
  t.same(values.map((v) => v?.k), keys, 'every read succeeds through the new addresses');
  t.ok(stale.currentConfig.version > versionBefore, 'the client refreshed its config');
});

t.test('a daemon refuses connections meant for another server, and the client re-routes', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const admin = await cluster.client();
  await admin.addSpace('s', { partitions: 4 });
  const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
  await Promise.all(keys.map((k) => admin.put('s', k, { k })));
  const stale = await Client.connect(cluster.coordinator.address, { subscribe: false });
  t.teardown(() => stale.close());

  // Swap the two daemons' ports: each old address now answers as the other server.
  const [a, b] = cluster.daemons as [typeof cluster.daemons[0], typeof cluster.daemons[0]];
  await Promise.all([a.proc.stop(), b.proc.stop()]);
  await startDaemon(t, cluster.coordinator.address, { dataDir: a.dataDir, port: b.port });
  await startDaemon(t, cluster.coordinator.address, { dataDir: b.dataDir, port: a.port });
  await cluster.waitForAvailable(2);

  const { WebSocket } = await import('ws');
  const refused = await new Promise<number>((resolve) => {
    const socket = new WebSocket(`ws://${b.address}/?server=${b.serverId}`);
    socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    socket.on('open', () => resolve(101));
  });
  t.equal(refused, 421, "a connection meant for server B is refused by A on B's old port");
  const values = await Promise.all(keys.map((k) => stale.get('s', k)));
  t.same(values.map((v) => v?.k), keys, 'the stale client re-routes and reads everything');
});

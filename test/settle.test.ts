// When a starting coordinator may drop daemons that did not come back (coordinator/settle.ts).
import t from 'tap';
import { awaitedServers, isSettled } from '../coordinator/settle.js';
import { newCluster, registerServer, setServerState } from '../coordinator/cluster.js';
import type { ClusterConfig } from '../shared/config.js';

function saved(): { config: ClusterConfig; ids: string[] } {
  let config = newCluster('1');
  for (let i = 0; i < 3; i++) config = registerServer(config, { address: `h:${i}`, serverId: null, clusterId: null }).config;
  const ids = config.servers.map((s) => s.id);
  return { config: setServerState(config, ids[2]!, 'not_available'), ids };
}
/** The config as a restarted coordinator loads it: every server down until it registers again. */
const loaded = (config: ClusterConfig) =>
  config.servers.reduce((c, s) => (s.state === 'available' ? setServerState(c, s.id, 'not_available') : c), config);

t.test('waits for the servers that were available, not for those already down', async (t) => {
  const { config, ids } = saved();
  const awaited = awaitedServers(config);
  t.same([...awaited].sort(), [ids[0], ids[1]].sort());
  let now = loaded(config);
  t.notOk(isSettled(now, awaited, 0, 1_500), 'not before they are back');
  now = setServerState(now, ids[0]!, 'available');
  t.notOk(isSettled(now, awaited, 100, 1_500), 'not with one still away');
  now = setServerState(now, ids[1]!, 'available');
  t.ok(isSettled(now, awaited, 200, 1_500), 'at once when every one of them is back, though the third is still down');
});

t.test('or once the failure timeout has passed since listening', async (t) => {
  const { config } = saved();
  const now = loaded(config);
  t.notOk(isSettled(now, awaitedServers(config), 1_499, 1_500));
  t.ok(isSettled(now, awaitedServers(config), 1_500, 1_500));
});

t.test('a server that shut down on purpose, or is forgotten, is not waited for', async (t) => {
  const { config, ids } = saved();
  let now = setServerState(loaded(config), ids[0]!, 'shutdown');
  now = { ...now, servers: now.servers.filter((s) => s.id !== ids[1]) };
  t.ok(isSettled(now, awaitedServers(config), 0, 1_500));
});

t.test('a new cluster is settled at once', async (t) => {
  t.ok(isSettled(newCluster('1'), awaitedServers(newCluster('1')), 0, 1_500));
});

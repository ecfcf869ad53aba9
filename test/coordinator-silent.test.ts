// A coordinator that dies without a word (its host loses power): no FIN, no RST, the daemon's socket stays
// ESTABLISHED. The daemon must notice by its unanswered lease requests and register anew, here with the same
// coordinator reached again through a proxy that forgets every old connection silently (test/jepsen/nemesis.ts).
import t from 'tap';
import { Client } from '../shared/client.js';
import { CoordinatorProxy } from './jepsen/nemesis.js';
import { fastHeartbeats, startCoordinator, startDaemon, waitFor } from './helpers/cluster.js';

t.test('a daemon whose coordinator went silent drops the session and registers again', async (t) => {
  const coordinator = await startCoordinator(t, { heartbeat: fastHeartbeats });
  const proxy = await CoordinatorProxy.start(coordinator.address);
  t.teardown(() => proxy.close());
  const daemon = await startDaemon(t, proxy.address);
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 2 });
  await client.put('s', 'k', { v: 1 });

  const registrations = () => daemon.proc.logs.filter((l) => l.msg === 'registered with the coordinator').length;
  t.equal(registrations(), 1);
  proxy.restartBehind();
  const noticed = await waitFor('the daemon to notice the silence', () => daemon.proc.logs.find((l) => l.msg === 'the coordinator answers no lease requests; dropping the session to register anew'), 30_000);
  t.ok(Number(noticed.silentMs) > fastHeartbeats.timeoutMs, `after more than the heartbeat timeout without an answer (${String(noticed.silentMs)} ms)`);
  await waitFor('the daemon to register again', () => registrations() >= 2, 30_000);
  await waitFor('the daemon to be available again', async () => {
    const config = await client.showConfig();
    return config.servers.find((s) => s.id === daemon.serverId)?.state === 'available';
  }, 30_000);
  t.same(await client.get('s', 'k'), { v: 1 }, 'and it serves again');
});

t.test('a client whose coordinator session went silent subscribes anew and follows the config again', async (t) => {
  const coordinator = await startCoordinator(t, { heartbeat: fastHeartbeats });
  const proxy = await CoordinatorProxy.start(coordinator.address);
  t.teardown(() => proxy.close());
  await startDaemon(t, coordinator.address);
  const follower = await Client.connect(proxy.address);
  t.teardown(() => follower.close());
  const admin = await Client.connect(coordinator.address);
  t.teardown(() => admin.close());

  proxy.restartBehind(); // the follower's session is dead without a FIN; it sends no request of its own
  const changed = await admin.addSpace('after', { partitions: 1 });
  await waitFor(`the follower to reach config ${changed.version} by itself`, () => follower.currentConfig.version >= changed.version, 40_000);
  t.ok(follower.currentConfig.spaces.some((s) => s.name === 'after'), 'its config names the space added while its session was dead');
});

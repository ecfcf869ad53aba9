// kv status: what an operator checks first, from a real cluster; and the derivations it prints, on configs made
// by the coordinator's own transitions.
import t from 'tap';
import { addSpace, newCluster, registerServer, setServerState } from '../coordinator/cluster.js';
import { busiest, degradedChains } from '../cli/format-status.js';
import { kv, startCluster, tempDir } from './helpers/cluster.js';

t.test('degraded chains and the busiest daemon', async (t) => {
  let config = newCluster();
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = registerServer(config, { address: `127.0.0.1:${2000 + i}`, serverId: null, clusterId: null });
    config = r.config;
    ids.push(r.serverId);
  }
  config = addSpace(config, 'a', 6, 1);
  t.same(degradedChains(config), [], 'every chain whole');
  const top = busiest(config)!;
  t.equal(top.chains, 4, 'six chains of two over three daemons: four each');
  config = setServerState(config, ids[0]!, 'not_available');
  const degraded = degradedChains(config);
  t.ok(degraded.length > 0 && degraded.every((d) => d.live === 1 && d.want === 2), 'a down member degrades its chains');
});

t.test('kv status on a running cluster', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const c = ['-c', cluster.coordinator.address];
  t.equal((await kv(t, ['add-space', 'users', '--tolerate', '1', ...c])).code, 0);
  const first = await kv(t, ['status', ...c]);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /^servers up: 3 of 3$/m);
  t.match(first.stdout, /^chains degraded: 0$/m);
  t.match(first.stdout, /^transfers in progress: 0$/m);
  t.match(first.stdout, /^backup: none running; last: none since this coordinator leads$/m);
  t.match(first.stdout, /^busiest daemon: \d+ 127\.0\.0\.1:\d+ \(\d+ chains, tail of \d+\)$/m);
  t.notMatch(first.stdout, /READ-ONLY/);
  t.equal((await kv(t, ['backup', 'status-test', '--out', tempDir(t), ...c])).code, 0);
  t.equal((await kv(t, ['set-read-only', ...c])).code, 0);
  const later = await kv(t, ['status', ...c]);
  t.match(later.stdout, /^backup: none running; last: status-test ok \d+ s ago$/m, 'the last backup and its age');
  t.match(later.stdout, /READ-ONLY/, 'read-only shows');
  const json = await kv(t, ['status', '--json', ...c]);
  t.equal((JSON.parse(json.stdout) as { lastBackup: { ok: boolean } }).lastBackup.ok, true, '--json for scripts');
});

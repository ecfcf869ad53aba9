// Restore onto new ports and directories while the original cluster keeps running (as in the HyperDex chapter).
import t from 'tap';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { kv, startCluster, startCoordinator, startDaemon, runKvProcess, tempDir, waitFor } from './helpers/cluster.js';
import { backupManager, restore } from './helpers/backup.js';

t.test('a restored cluster starts read-only on new ports, shows missing servers, and opens with set-read-write', async (t) => {
  const cluster = await startCluster(t, { daemons: 3, daemonArgs: ['--write-buffer-bytes', '65536'] });
  const client = await cluster.client();
  await client.addSpace('users', { partitions: 9 });
  await Promise.all(Array.from({ length: 3_000 }, (_, i) => client.put('users', `u${i}`, { i, name: `user ${i}` })));
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, cluster.coordinator.address, root);
  const backupDir = join(root, summary.name);
  const ids = summary.servers.map((s) => s.serverId);
  t.equal(ids.length, 3);

  // Writes after the backup must not appear in the restore.
  await client.put('users', 'after-backup', { late: true });

  // Restore only two daemons first: show-config names the missing one.
  const partial = await restore(t, backupDir, ids.slice(0, 2));
  const shown = await kv(t, ['show-config', '--coordinator', partial.coordinator.address]);
  t.equal(shown.code, 0);
  t.match(shown.stdout, /flags read-only/, 'restored clusters come up read-only');
  t.match(shown.stdout, new RegExp(`not available: ${ids[2]}`), 'show-config names the server still missing');
  t.equal((await partial.client.showConfig()).clusterId, (await client.showConfig()).clusterId, 'same cluster id');

  const copy = join(tempDir(t, 'kv-restore-'), ids[2]!);
  cpSync(join(backupDir, ids[2]!), copy, { recursive: true });
  const third = await startDaemon(t, partial.coordinator.address, { dataDir: copy });
  t.equal(third.serverId, ids[2], 'the last daemon re-registers by its server id from a new address');
  await waitFor('all three restored daemons available', () =>
    partial.client.showConfig().then((c) => c.servers.every((s) => s.state === 'available')),
  );

  const restored = partial.client;
  t.equal(await restored.count('users'), 3_000, 'every key is there');
  t.same(await restored.get('users', 'u1234'), { i: 1234, name: 'user 1234' });
  t.equal(await restored.get('users', 'after-backup'), undefined, 'nothing written after the backup');
  await t.rejects(restored.put('users', 'x', { v: 1 }), { code: 'READ_ONLY' });

  const rw = await kv(t, ['set-read-write', '--coordinator', partial.coordinator.address]);
  t.equal(rw.code, 0);
  await restored.put('users', 'x', { v: 1 });
  t.same(await restored.get('users', 'x'), { v: 1 }, 'set-read-write opens the restored cluster');

  // The original cluster kept running all along, untouched by the restore.
  t.equal(await client.get('users', 'x'), undefined, 'the clusters are independent');
  t.same(await client.get('users', 'after-backup'), { late: true });
});

t.test('restore refuses a server id the backup does not know, and a non-empty data dir', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 2 });
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, cluster.coordinator.address, root);

  // A daemon that joined after the backup: same cluster, but unknown to the saved config.
  const late = await startDaemon(t, cluster.coordinator.address);
  t.equal(await late.proc.stop(), 0);

  const restored = await restore(t, join(root, summary.name), summary.servers.map((s) => s.serverId));
  const refused = runKvProcess(t, ['daemon', '--listen-port', '0', '--coordinator', restored.coordinator.address, '--data', late.dataDir]);
  t.not(await refused.exited, 0, 'the unknown daemon exits non-zero');
  t.match(refused.stderr, /UNKNOWN_SERVER/);

  const again = await kv(t, ['coordinator', '--port', '0', '--data', restored.coordinator.dataDir, '--restore', join(root, summary.name, 'coordinator.bin')]);
  t.not(again.code, 0, 'restoring into a data dir in use fails');
  await restored.coordinator.proc.stop();
  const occupied = await kv(t, ['coordinator', '--port', '0', '--data', restored.coordinator.dataDir, '--restore', join(root, summary.name, 'coordinator.bin')]);
  t.not(occupied.code, 0, 'restoring over an existing cluster state fails');
  t.match(occupied.stderr, /already holds cluster .*DATA_DIR_INVALID/);
});

t.test('a backup whose config changes during the freeze is retried and then succeeds', async (t) => {
  // Each attempt stalls 4 s after freezing: time enough for a new daemon to start and join meanwhile.
  const coordinator = await startCoordinator(t, { args: ['--fault-stall-after-freeze-ms', '4000'] });
  const first = await startDaemon(t, coordinator.address);
  const { Client } = await import('../shared/client.js');
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 2 });
  const out = tempDir(t);
  const backup = runKvProcess(t, ['backup', 'b1', '--out', out, '--lease-ms', '30000', '--json', '--coordinator', coordinator.address]);
  await first.proc.waitForLog('frozen');
  // A daemon joining while frozen changes the config: the cut of that attempt cannot be trusted.
  await startDaemon(t, coordinator.address);
  t.equal(await backup.exited, 0, backup.stderr);
  const result = JSON.parse(backup.stdout) as { attempts: number; servers: unknown[] };
  t.ok(result.attempts >= 2, `the backup was retried (${result.attempts} attempts)`);
  t.ok(coordinator.proc.logs.some((l) => l.msg === 'retrying the backup' && String(l.why).includes('config changed')), 'because the config changed');
  t.equal((await client.showConfig()).freeze, undefined, 'and the cluster is thawed');
});

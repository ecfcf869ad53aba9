// A restored cluster shares its cluster and server ids with its original: only the copies of the backup it was
// restored from, and daemons that joined it since, may register (coordinator/cluster.ts, checkDataOf).
import t from 'tap';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { registerServer, newCluster, restoredCluster, checkDataOf } from '../coordinator/cluster.js';
import { messageLines, runKvProcess, startCluster, startDaemon, tempDir, waitFor, type TestLike } from './helpers/cluster.js';
import { backupManager, restore } from './helpers/backup.js';

/** Starts a daemon on `dataDir` that the coordinator must refuse: its exit code and its one line. */
async function refused(t: TestLike, coordinator: string, dataDir: string) {
  const proc = runKvProcess(t, ['daemon', '--listen-port', '0', '--coordinator', coordinator, '--data', dataDir]);
  await waitFor('the refused daemon to exit', () => proc.exitCode !== undefined, 20_000);
  return { code: proc.exitCode, lines: messageLines(proc.stderr), registered: /registered with the coordinator/.test(proc.stderr) };
}

t.test('a restored cluster takes in only its backup copies; the original and the restored copy refuse each other', async (t) => {
  const original = await startCluster(t, { daemons: 2 });
  const client = await original.client();
  // tolerate 0: each partition lives on one daemon, so a daemon taken in with the wrong data serves it as is.
  await client.addSpace('s', { partitions: 4 });
  await Promise.all(Array.from({ length: 40 }, (_, i) => client.put('s', `k${i}`, { i })));
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, original.coordinator.address, root);
  const backupDir = join(root, summary.name);
  const ids = summary.servers.map((s) => s.serverId);
  // Newer data in the original, on every partition.
  await Promise.all(Array.from({ length: 40 }, (_, i) => client.put('s', `k${i}`, { i, late: true })));
  const originalConfig = await client.showConfig();

  const restored = await restore(t, backupDir, ids);
  const restoredConfig = await restored.client.showConfig();
  t.not(restoredConfig.incarnation, originalConfig.incarnation, 'the restore is a new incarnation');
  t.same(restoredConfig.restoredFrom, { incarnation: originalConfig.incarnation, version: summary.configVersion }, 'of the backup cut');
  t.same(await restored.client.get('s', 'k7'), { i: 7 }, "the backup's copies were taken in");

  // A copy of a running original daemon's data dir, started against the restored coordinator: refused at once,
  // even while the restored daemon of that server id runs, and again once it has stopped.
  const victim = original.daemons.find((d) => d.serverId === ids[0])!;
  const stray = join(tempDir(t, 'kv-stray-'), 'd');
  cpSync(victim.dataDir, stray, { recursive: true });
  const whileRunning = await refused(t, restored.coordinator.address, stray);
  t.equal(whileRunning.code, 1, 'the stray daemon exits 1');
  t.equal(whileRunning.lines.length, 1, `with one line (${JSON.stringify(whileRunning.lines)})`);
  const line = whileRunning.lines[0] ?? '';
  t.match(line, /\(CLUSTER_MISMATCH\)$/, 'CLUSTER_MISMATCH');
  t.match(line, new RegExp(`incarnation ${originalConfig.incarnation}\\b.*incarnation ${restoredConfig.incarnation}\\b`), 'naming both incarnations');
  t.notOk(whileRunning.registered, 'it never registered');
  const restoredDaemon = restored.daemons.find((d) => d.serverId === ids[0])!;
  t.equal(await restoredDaemon.proc.stop('SIGTERM'), 0, "the restored daemon of that server id stops");
  const afterStop = await refused(t, restored.coordinator.address, stray);
  t.equal(afterStop.code, 1, 'the stray daemon is refused when the server id is free too');
  t.match(afterStop.lines[0] ?? '', /\(CLUSTER_MISMATCH\)$/);
  t.ok(
    restored.coordinator.proc.logs.some((l) => l.msg === 'refused a daemon' && l.serverId === ids[0] && l.code === 'CLUSTER_MISMATCH'),
    'the restored coordinator logs the refusal',
  );
  const server = (await restored.client.showConfig()).servers.find((s) => s.id === ids[0])!;
  t.equal(server.state, 'shutdown', 'the server id was not taken over');
  t.equal(server.address, restoredDaemon.address, 'nor its address');

  // The restored daemon's own data dir comes back: it is stamped with the restored incarnation.
  const back = await startDaemon(t, restored.coordinator.address, { dataDir: restoredDaemon.dataDir });
  t.equal(back.serverId, ids[0]);
  await restored.client.setReadOnly(false);
  const values = await Promise.all(Array.from({ length: 40 }, (_, i) => restored.client.get('s', `k${i}`)));
  t.same(values, Array.from({ length: 40 }, (_, i) => ({ i })), "every key holds the backup's value, none the original's newer one");

  // The other way round: a restored daemon's data dir, and a fresh copy of the backup, against the original.
  const restoredCopy = join(tempDir(t, 'kv-stray-'), 'd');
  cpSync(back.dataDir, restoredCopy, { recursive: true });
  const intoOriginal = await refused(t, original.coordinator.address, restoredCopy);
  t.equal(intoOriginal.code, 1, "the original refuses the restored cluster's data dir");
  t.match(intoOriginal.lines[0] ?? '', new RegExp(`incarnation ${restoredConfig.incarnation}\\b.*incarnation ${originalConfig.incarnation}\\b.*\\(CLUSTER_MISMATCH\\)$`));
  const backupCopy = join(tempDir(t, 'kv-stray-'), 'd');
  cpSync(join(backupDir, ids[1]!), backupCopy, { recursive: true });
  const copyIntoOriginal = await refused(t, original.coordinator.address, backupCopy);
  t.equal(copyIntoOriginal.code, 1, "and a copy of its own backup (it would roll back what only that server holds)");
  t.match(copyIntoOriginal.lines[0] ?? '', new RegExp(`copy of backup ${summary.name}.*\\(CLUSTER_MISMATCH\\)$`));
  t.same(await client.get('s', 'k7'), { i: 7, late: true }, 'the original keeps its newer data');
  t.same((await client.showConfig()).servers, originalConfig.servers, 'and its servers as they were');
});

t.test('checkDataOf: which data each kind of cluster takes in', async (t) => {
  let original = newCluster('5');
  const a = registerServer(original, { address: 'h:1', serverId: null, clusterId: null });
  original = a.config;
  const reg = (incarnation: string | null, copyOf: { name: string; configVersion: number } | null = null) =>
    ({ address: 'h:2', serverId: a.serverId, clusterId: '5', incarnation, copyOf });
  const cut = { name: 'b1', configVersion: original.version };
  const restored = restoredCluster(original);

  t.doesNotThrow(() => checkDataOf(original, reg(original.incarnation)), "the original takes in its own data");
  t.doesNotThrow(() => checkDataOf(original, reg(null)), 'and data dirs stamped before incarnations were');
  t.throws(() => checkDataOf(original, reg(original.incarnation, cut)), { code: 'CLUSTER_MISMATCH', message: /copy of backup b1/ }, 'not a copy of its backup');
  t.throws(() => checkDataOf(original, reg(restored.incarnation)), { code: 'CLUSTER_MISMATCH' }, "nor its restore's data");

  t.doesNotThrow(() => checkDataOf(restored, reg(original.incarnation, cut)), 'the restore takes in the cut it came from');
  t.doesNotThrow(() => checkDataOf(restored, reg(null, cut)), 'also from a backup taken before incarnations were stamped');
  t.doesNotThrow(() => checkDataOf(restored, reg(restored.incarnation, cut)), 'and the copy once stamped with the restore');
  t.doesNotThrow(() => checkDataOf(restored, reg(restored.incarnation)), 'and daemons that joined it since');
  t.throws(() => checkDataOf(restored, reg(original.incarnation)), { code: 'CLUSTER_MISMATCH', message: /data of incarnation/ }, "not the original's live data");
  t.throws(() => checkDataOf(restored, reg(null)), { code: 'CLUSTER_MISMATCH' }, 'nor unstamped live data');
  t.throws(() => checkDataOf(restored, reg(original.incarnation, { name: 'b0', configVersion: cut.configVersion - 1 })), { code: 'CLUSTER_MISMATCH' }, 'nor a copy of another backup');
  const again = restoredCluster(original);
  t.throws(() => checkDataOf(again, reg(restored.incarnation, cut)), { code: 'CLUSTER_MISMATCH' }, "a second restore of the same backup refuses the first one's daemons");
  t.doesNotThrow(() => checkDataOf(restored, { address: 'h:3', serverId: null, clusterId: null }), 'a new daemon joins anything');
  t.throws(() => checkDataOf(restored, { ...reg(restored.incarnation), clusterId: '6' }), { code: 'CLUSTER_MISMATCH', message: /cluster 6/ }, 'a foreign cluster is refused');
  t.throws(() => checkDataOf(original, { ...reg(original.incarnation), dataFormat: 2 }), { code: 'DATA_DIR_INVALID', message: /stores data format 2/ },
    'a daemon of another data format: stored bytes move between daemons as they are');
  t.doesNotThrow(() => checkDataOf(original, { ...reg(original.incarnation), dataFormat: 1 }), 'format 1, as every daemon so far (absent: 1)');
});

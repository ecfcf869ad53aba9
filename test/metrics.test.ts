// Prometheus metrics on --metrics-port: the text parses as the exposition format, and the counters move with the
// operations done (requests by type and outcome on daemons and coordinators, the config version and epoch,
// freezes, backups); the write-queue and replication gauges show what waits on a successor that stopped.
import t from 'tap';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { levelDir } from '../shared/data-dir.js';
import { parseManifest } from '../daemon/leveldb-manifest.js';
import { Client } from '../shared/client.js';
import { fetchMetricsText as scrapeText, metricValue as value, parsePrometheus as parse, scrapeMetrics as scrape } from '../shared/prometheus-text.js';
import { kv, messageLines, startCluster, startCoordinator, startDaemon, tempDir, waitFor } from './helpers/cluster.js';

/** Whether the text declares a metric (a labelled gauge with no series yet has only its HELP and TYPE lines). */
const declares = (text: string, name: string, type: string) => text.includes(`\n# TYPE ${name} ${type}\n`) || text.startsWith(`# TYPE ${name} ${type}\n`);

t.test('daemon and coordinator metrics parse and move with the work done', async (t) => {
  const coordinator = await startCoordinator(t, { args: ['--metrics-port', '0'] });
  const coordinatorMetrics = String((await coordinator.proc.waitForLog('metrics listening')).address);
  const daemon = await startDaemon(t, coordinator.address, { args: ['--metrics-port', '0'] });
  const daemonMetrics = String((await daemon.proc.waitForLog('metrics listening')).address);
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('m', { partitions: 2 });

  const before = await scrape(daemonMetrics);
  for (let i = 0; i < 20; i++) await client.put('m', `k${i}`, { i });
  for (let i = 0; i < 10; i++) await client.get('m', `k${i}`);
  const after = await waitFor('the daemon to count 20 puts', async () => {
    const s = await scrape(daemonMetrics);
    return value(s, 'kv_requests_total', { type: 'put', code: 'ok' }) - value(before, 'kv_requests_total', { type: 'put', code: 'ok' }) >= 20 ? s : undefined;
  });
  t.ok(value(after, 'kv_requests_total', { type: 'get', code: 'ok' }) - value(before, 'kv_requests_total', { type: 'get', code: 'ok' }) >= 10, 'and 10 gets');
  t.ok(value(after, 'kv_request_seconds_count', { type: 'put' }) >= 20, 'each put timed');
  t.ok(after.some((s) => s.name === 'kv_request_seconds_bucket' && s.labels.le === '+Inf'), 'as a histogram');
  const config = await client.showConfig();
  t.equal(value(after, 'kv_config_version'), config.version, 'the daemon runs the config version the coordinator has');
  t.equal(value(after, 'kv_config_epoch'), config.epoch ?? 0, 'and its epoch');
  t.ok(value(after, 'kv_process_resident_memory_bytes') > 0, "Node's own process metrics too");
  t.equal(after.find((s) => s.name === 'kv_requests_total')?.labels.role, 'daemon', 'labelled with the role');
  t.ok(value(after, 'kv_leveldb_bytes') > 0, 'bytes on disk');
  t.ok(value(after, 'kv_commit_group_operations_count') - value(before, 'kv_commit_group_operations_count') >= 1, 'group commits counted');
  t.ok(value(after, 'kv_commit_group_operations_sum') - value(before, 'kv_commit_group_operations_sum') >= 20, 'with the operations in them');
  t.equal(value(after, 'kv_transfers_in_progress', { direction: 'receiving' }), 0, 'no transfer on a one-daemon cluster');
  const afterText = await scrapeText(daemonMetrics);
  for (const name of ['kv_write_queue_depth', 'kv_write_queue_in_batch', 'kv_replication_pending_changes', 'kv_replication_lag_seconds', 'kv_replication_daemon_pending_changes', 'kv_replication_daemon_lag_seconds']) {
    t.ok(declares(afterText, name, 'gauge'), `${name} is a gauge`);
  }
  const idle = parse(afterText);
  t.equal(value(idle, 'kv_write_queue_depth'), 0, 'nothing waits in an idle write queue');
  t.equal(value(idle, 'kv_replication_daemon_pending_changes'), 0, 'a sole replica has nothing to replicate');
  t.notOk(idle.some((s) => s.name === 'kv_replication_lag_seconds'), 'and no lag series');

  const frozenBefore = value(after, 'kv_freezes_total');
  const out = tempDir(t);
  const backup = await kv(t, ['backup', 'metrics-test', '--out', out, '-c', coordinator.address]);
  t.equal(backup.code, 0, backup.stderr);
  const afterBackup = await scrape(daemonMetrics);
  t.equal(value(afterBackup, 'kv_freezes_total') - frozenBefore, 1, 'a backup is one freeze');
  t.ok(value(afterBackup, 'kv_frozen_seconds_total') > 0, 'with its time');
  t.equal(value(afterBackup, 'kv_snapshots_held'), 1, 'and one snapshot kept');

  const c = await scrape(coordinatorMetrics);
  t.equal(value(c, 'kv_coordinator_leading'), 1, 'the coordinator leads');
  t.equal(value(c, 'kv_config_version'), (await client.showConfig()).version);
  t.equal(value(c, 'kv_servers', { state: 'available' }), 1, 'one daemon available');
  t.equal(value(c, 'kv_backups_total', { result: 'ok' }), 1, 'one good backup');
  t.ok(value(c, 'kv_backup_last_success_timestamp_seconds') > Date.now() / 1000 - 600, 'just now');
  t.equal(value(c, 'kv_coordinator_requests_total', { type: 'add_space', code: 'ok' }), 1, 'the coordinator counted the space added');
  t.ok(value(c, 'kv_coordinator_requests_total', { type: 'register', code: 'ok' }) >= 1, "and the daemon's registration");
  t.equal(c.find((s) => s.name === 'kv_coordinator_requests_total')?.labels.role, 'coordinator', 'labelled with the role');
  await t.rejects(client.addSpace('m', { partitions: 2 }), { code: 'SPACE_EXISTS' }, 'a space added twice is refused');
  await t.rejects(client.rmSpace('nowhere'), { code: 'NO_SUCH_SPACE' }, 'and an unknown one removed');
  const refused = await scrape(coordinatorMetrics);
  t.equal(value(refused, 'kv_coordinator_requests_total', { type: 'add_space', code: 'SPACE_EXISTS' }), 1, 'the refusal counted by its code');
  t.equal(value(refused, 'kv_coordinator_requests_total', { type: 'rm_space', code: 'NO_SUCH_SPACE' }), 1, 'each by its own');
  t.equal(value(refused, 'kv_coordinator_requests_total', { type: 'add_space', code: 'ok' }), 1, 'the good one still one');
  const missing = await fetch(`http://${coordinatorMetrics}/other`);
  t.equal(missing.status, 404, 'anything but /metrics is 404');
});

t.test('replication lag and write-queue depth show the writes waiting on a stopped successor, and drain after it resumes', async (t) => {
  // A heartbeat timeout far past the pause: the coordinator keeps the stopped tail in the chain meanwhile.
  const cluster = await startCluster(t, { daemons: 2, daemonArgs: ['--metrics-port', '0'], heartbeat: { intervalMs: 500, timeoutMs: 30_000 } });
  const client = await cluster.client();
  await client.addSpace('r', { partitions: 1, tolerate: 1 });
  await client.put('r', 'warm', { n: 0 }); // connections down the chain open
  const chain = (await client.showConfig()).spaces.find((s) => s.name === 'r')!.partitions[0]!.chain;
  t.equal(chain.length, 2, 'a chain of two');
  const [head, tail] = chain.map((id) => cluster.daemons.find((d) => d.serverId === id)!);
  const headMetrics = String((await head!.proc.waitForLog('metrics listening')).address);
  const partition = { space: 'r', partition: '0' };

  tail!.proc.child.kill('SIGSTOP');
  t.teardown(() => void tail!.proc.child.kill('SIGCONT'));
  // Observed within the peers' silence limit (2 s): past it the head reports the tail and the chain may change.
  const first = Array.from({ length: 5 }, (_, i) => client.put('r', `a${i}`, { i }));
  const lagging = await waitFor('the head to report a batch pending on the stopped tail, aging', async () => {
    const s = await scrape(headMetrics);
    return value(s, 'kv_replication_lag_seconds', partition) >= 0.1 ? s : undefined;
  }, 1_500);
  t.ok(value(lagging, 'kv_replication_pending_changes', partition) >= 1, 'with its changes pending');
  t.ok(value(lagging, 'kv_replication_daemon_pending_changes') >= value(lagging, 'kv_replication_pending_changes', partition), 'in the daemon-wide total');
  t.ok(value(lagging, 'kv_replication_daemon_lag_seconds') >= value(lagging, 'kv_replication_lag_seconds', partition), 'and the daemon-wide oldest');
  t.ok(value(lagging, 'kv_write_queue_in_batch') >= 1, 'the batch is out');
  const behind = Array.from({ length: 10 }, (_, i) => client.put('r', `b${i}`, { i }));
  const queued = await waitFor('the writes behind the batch to wait in the queue', async () => {
    const s = await scrape(headMetrics);
    return value(s, 'kv_write_queue_depth') >= 1 ? s : undefined;
  }, 1_500);
  t.ok(value(queued, 'kv_write_queue_depth') <= 10, `at most the 10 writes sent behind it wait (${value(queued, 'kv_write_queue_depth')})`);

  tail!.proc.child.kill('SIGCONT');
  await Promise.all([...first, ...behind]);
  t.pass('every write acknowledged after the tail resumed');
  const drained = await waitFor('the head to report nothing pending', async () => {
    const s = await scrape(headMetrics);
    return value(s, 'kv_replication_daemon_pending_changes') === 0 && value(s, 'kv_write_queue_depth') === 0 ? s : undefined;
  }, 10_000);
  t.notOk(drained.some((s) => s.name === 'kv_replication_pending_changes' || s.name === 'kv_replication_lag_seconds'), 'the partition series are gone');
  t.equal(value(drained, 'kv_replication_daemon_lag_seconds'), 0, 'no lag');
  t.equal(value(drained, 'kv_write_queue_in_batch'), 0, 'no batch out');
});

/** Tables per level as the MANIFEST lists them (parseManifest is checked against LevelDB's own listing in leveldb-manifest.test), bytes as the files are on disk. */
function levelsOf(dir: string): Map<number, { files: number; bytes: number }> {
  const state = parseManifest(readFileSync(join(dir, readFileSync(join(dir, 'CURRENT'), 'utf8').trim())));
  const levels = new Map<number, { files: number; bytes: number }>();
  for (const number of state.tables.keys()) {
    const level = state.levels.get(number) ?? 0;
    const name = String(number).padStart(6, '0');
    const bytes = statSync(join(dir, existsSync(join(dir, `${name}.ldb`)) ? `${name}.ldb` : `${name}.sst`)).size;
    const at = levels.get(level) ?? { files: 0, bytes: 0 };
    levels.set(level, { files: at.files + 1, bytes: at.bytes + bytes });
  }
  return levels;
}

t.test("LevelDB's tables per level, from the first scrape on, are those its MANIFEST lists", async (t) => {
  const coordinator = await startCoordinator(t);
  // A 64 KiB memtable: a few hundred 1 KB values make several table files.
  const daemon = await startDaemon(t, coordinator.address, { args: ['--metrics-port', '0', '--write-buffer-bytes', '65536'] });
  const metrics = String((await daemon.proc.waitForLog('metrics listening')).address);
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('tables', { partitions: 2 });
  for (let i = 0; i < 600; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => client.put('tables', `k${i + j}`, { v: 'x'.repeat(1000) })));
  // Until LevelDB's background flushes and compactions are done: the table set read twice the same, 300 ms apart.
  const dir = levelDir(daemon.dataDir);
  const levelsNow = () => JSON.stringify([...levelsOf(dir)]);
  let last = '';
  await waitFor('LevelDB to stop changing its tables', async () => {
    const now = levelsNow();
    const settled = now === last && now !== '[]';
    last = now;
    if (!settled) await new Promise((resolve) => setTimeout(resolve, 300));
    return settled;
  });
  const listed = levelsOf(dir);
  const first = await scrape(metrics); // the daemon's first scrape: nothing read before it
  for (const [level, { files, bytes }] of listed) {
    t.equal(value(first, 'kv_leveldb_tables', { level: String(level) }), files, `level ${level}: ${files} tables`);
    t.equal(value(first, 'kv_leveldb_table_bytes', { level: String(level) }), bytes, `level ${level}: ${bytes} bytes`);
  }
  t.ok([...listed.values()].reduce((a, l) => a + l.files, 0) >= 2, 'over more than one table');
});

t.test('a metrics port in use is refused in one line', async (t) => {
  const coordinator = await startCoordinator(t, { args: ['--metrics-port', '0'] });
  const taken = String((await coordinator.proc.waitForLog('metrics listening')).address);
  const r = await kv(t, ['daemon', '--listen-port', '0', '--metrics-port', taken.split(':').pop()!, '-c', coordinator.address, '--data', join(tempDir(t), 'd')]);
  t.equal(r.code, 1, 'exit 1');
  t.match(messageLines(r.stderr), [/metrics port .* is already in use.*\(ADDRESS_IN_USE\)$/]);
});

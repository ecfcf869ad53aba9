// backup-manager runs that overlap or die: a second run (a cron run overlapping a manual one) must fail on the
// lock without touching the first one's partial copy; a SIGKILLed run must leave no rsync running, its snapshots
// are listed by kv list-snapshots, and the next run releases them and removes its partial directory. rsync is the
// real one, slowed by --bwlimit (a wrapper first on PATH) so that a copy lasts long enough to overlap.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { BackupSummary } from '../cli/backup/manager.js';
import type { SnapshotInfo } from '../shared/protocol.js';
import { kv, runKvProcess, startCluster, tempDir, waitFor, type Cluster } from './helpers/cluster.js';
import { processesMentioning, slowRsyncPath } from './helpers/backup.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Two daemons with about 1 MB each in LevelDB tables: ten seconds of slowed rsync. */
async function seeded(t: TapTest): Promise<Cluster> {
  const cluster = await startCluster(t, { daemons: 2, daemonArgs: ['--write-buffer-bytes', '65536'] });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('s', { partitions: 4 });
  for (let from = 0; from < 2500; from += 250) {
    await Promise.all(Array.from({ length: 250 }, (_, j) => client.put('s', `k${from + j}`, { pad: randomBytes(600).toString('base64') })));
  }
  return cluster;
}

/** The partial directory of the run in `root`, once its rsync has started copying into it. */
const copying = (root: string) =>
  waitFor('a backup-manager run copying into its partial directory', () => {
    const partial = readdirSync(root).find((n) => n.endsWith('.partial'));
    return partial && readdirSync(join(root, partial)).some((n) => /^\d+$/.test(n)) ? partial : undefined;
  }, 60_000);

async function listSnapshots(t: TapTest, coordinator: string) {
  const listed = await kv(t, ['list-snapshots', '--json', '--coordinator', coordinator]);
  t.equal(listed.code, 0, `list-snapshots exits 0 (${listed.stderr.slice(-300)})`);
  return (JSON.parse(listed.stdout) as { snapshots: Array<SnapshotInfo & { serverId: string; ageMs: number | null }> }).snapshots;
}

t.test("a second backup-manager fails on the lock and leaves the running one's partial copy alone", async (t) => {
  const cluster = await seeded(t);
  const root = tempDir(t, 'kv-backups-');
  const address = cluster.coordinator.address;
  const first = runKvProcess(t, ['backup-manager', '--backup-dir', root, '--coordinator', address, '--json'], { PATH: slowRsyncPath(t) });
  const partial = await copying(root);

  const second = await kv(t, ['backup-manager', '--backup-dir', root, '--coordinator', address]);
  t.equal(second.code, 1, 'the second run exits 1');
  t.match(second.stderr, new RegExp(`backup ${partial.replace('.partial', '')} is running \\(owner kv backup-manager \\(pid ${first.child.pid} `),
    'naming the running backup and its owner');
  t.match(second.stderr, /\(BACKUP_IN_PROGRESS\)/, 'BACKUP_IN_PROGRESS');
  t.ok(existsSync(join(root, partial)), "the first run's partial directory is still there");

  t.equal(await first.exited, 0, `the first run completes (${first.stderr.slice(-500)})`);
  const summary = JSON.parse(first.stdout) as BackupSummary;
  t.equal(`${summary.name}.partial`, partial, 'it is the backup that was being copied');
  const verify = await kv(t, ['verify-backup', join(root, summary.name)]);
  t.equal(verify.code, 0, `and it verifies (${verify.stdout.trim().split('\n').at(-1)})`);
});

t.test('a SIGKILLed backup-manager: its rsync dies with it, list-snapshots shows what it left, the next run releases it', async (t) => {
  const cluster = await seeded(t);
  const root = tempDir(t, 'kv-backups-');
  const address = cluster.coordinator.address;
  // A hand-made snapshot, kept on the daemons on purpose: no backup-manager run may release it.
  const out = tempDir(t, 'kv-backup-out-');
  t.equal((await kv(t, ['backup', 'by-hand', '--out', out, '--coordinator', address])).code, 0, 'kv backup by-hand');

  const run = runKvProcess(t, ['backup-manager', '--backup-dir', root, '--coordinator', address], { PATH: slowRsyncPath(t) });
  const partial = await copying(root);
  const name = partial.replace('.partial', '');
  const partialDir = join(root, partial);
  await waitFor('rsync copying into the partial directory', () => processesMentioning(partialDir).length > 0);
  run.child.kill('SIGKILL');
  await run.exited;
  await waitFor(`no process left copying into ${partialDir}`, () => processesMentioning(partialDir).length === 0, 10_000);
  t.pass('every rsync of the killed run is gone');

  const left = await listSnapshots(t, address);
  const ids = cluster.daemons.map((d) => d.serverId).sort();
  const ofRun = left.filter((s) => s.name === name);
  t.same(ofRun.map((s) => s.serverId).sort(), ids, 'list-snapshots shows the killed run\'s snapshot on every daemon');
  t.ok(ofRun.every((s) => s.sealed && s.owner === `kv backup-manager (pid ${run.child.pid} on ${hostname()})`), 'with its owner');
  t.ok(ofRun.every((s) => s.ageMs !== null && s.ageMs >= 0 && s.ageMs < 120_000), 'and its age');
  const text = await kv(t, ['list-snapshots', '--coordinator', address]);
  t.match(text.stdout, new RegExp(`${name} .* kv backup-manager \\(pid ${run.child.pid} `), 'the table names the snapshot and its owner');
  t.match(text.stdout, /by-hand .* kv backup \(pid /, 'and the hand-made one');

  // Partial directories: one whose owner still runs (this test's process) is kept; one with no owner goes.
  const alive = join(root, '2000-01-01T00:00:00.partial');
  mkdirSync(alive);
  writeFileSync(join(alive, '.owner'), `kv backup-manager (pid ${process.pid} on ${hostname()})\n`);
  mkdirSync(join(root, '2000-01-02T00:00:00.partial'));

  // The dead run's lock expires by itself (it renewed it every 10 s); until then a new run is refused.
  const next = await waitFor('a backup-manager run once the killed run\'s lock has expired', async () => {
    const result = await kv(t, ['backup-manager', '--backup-dir', root, '--coordinator', address, '--json']);
    if (result.code === 0) return result;
    if (/BACKUP_IN_PROGRESS/.test(result.stderr)) return undefined;
    throw new Error(`backup-manager exited ${result.code}: ${result.stderr.slice(-500)}`);
  }, 60_000);
  const released = next.stderr.split('\n').filter((l) => l.includes('releasing snapshots left by a backup-manager run that died'));
  t.equal(released.length, 1, 'the next run says it releases the dead run\'s snapshots');
  t.match(released[0] ?? '', name, 'naming them');
  const after = await listSnapshots(t, address);
  t.same(after.filter((s) => s.name === name), [], 'they are gone from every daemon');
  t.same(after.filter((s) => s.name === 'by-hand').map((s) => s.serverId).sort(), ids, 'the hand-made snapshot is kept');
  t.notOk(existsSync(partialDir), "the dead run's partial directory is removed");
  t.ok(existsSync(alive), 'a partial directory whose owner still runs is kept');
  t.notOk(existsSync(join(root, '2000-01-02T00:00:00.partial')), 'one with no owner is removed');
  const summary = JSON.parse(next.stdout) as BackupSummary;
  t.equal((await kv(t, ['verify-backup', join(root, summary.name)])).code, 0, 'the next backup verifies');
});

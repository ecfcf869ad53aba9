// The backup tools from the outside: `kv backup` and `kv backup-release` by hand, backup-manager's incremental
// copies (unchanged table files hard-linked to the previous backup), --keep pruning, and verify-backup finding a
// damaged file. Real processes on loopback, temp dirs; every wait is a polled condition.
import t from 'tap';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BackupSummary } from '../cli/backup/manager.js';
import type { Client } from '../shared/client.js';
import { kv, startCluster, tempDir, type Cluster } from './helpers/cluster.js';
import { backupManager, readSummary } from './helpers/backup.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const tableArgs = ['--write-buffer-bytes', '65536'];

/** Enough data that every daemon flushes several LevelDB table files (64 KiB write buffers). */
async function load(client: Client, space: string, keys: number, prefix = 'k') {
  for (let from = 0; from < keys; from += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, keys - from) }, (_, j) =>
        // Random padding, so LevelDB's compression leaves the tables about as big as the data.
        client.put(space, `${prefix}${from + j}`, { i: from + j, pad: randomBytes(600).toString('base64') })),
    );
  }
}

/** Every file below `dir`, relative, '/'-separated. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  walk(dir, '');
  return out;
}

const tables = (backupDir: string, serverId: string) =>
  readdirSync(join(backupDir, serverId, 'leveldb')).filter((n) => /\.(ldb|sst)$/.test(n));

async function seeded(t: TapTest, keys: number): Promise<{ cluster: Cluster; client: Client }> {
  const cluster = await startCluster(t, { daemons: 3, daemonArgs: tableArgs });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('s', { partitions: 12 });
  await load(client, 's', keys);
  return { cluster, client };
}

t.test('kv backup NAME --out DIR: one line per daemon, the coordinator state, and backup-release deletes the snapshots', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 6 });
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.put('s', `k${i}`, { i })));
  const out = tempDir(t, 'kv-backup-out-');

  const result = await kv(t, ['backup', 'snap1', '--out', out, '--coordinator', cluster.coordinator.address]);
  t.equal(result.code, 0, `kv backup exits 0 (stderr: ${result.stderr.slice(-300)})`);
  const lines = result.stdout.trim().split('\n');
  t.equal(lines.length, 3, 'one line per daemon on stdout');
  const rows = lines.map((line) => line.split(' '));
  t.ok(rows.every((r) => r.length === 3), 'each line is "<server-id> <host> <path>"');
  t.same(rows.map((r) => r[0]).sort(), cluster.daemons.map((d) => d.serverId).sort(), 'one line for each daemon, by server id');
  t.ok(rows.every((r) => r[1] === '127.0.0.1'), 'each line names the daemon host');
  for (const [serverId, , path] of rows) {
    const daemon = cluster.daemons.find((d) => d.serverId === serverId)!;
    t.equal(path, join(daemon.dataDir, 'backups', 'snap1'), `server ${serverId}: the snapshot is in its data dir`);
    t.ok(existsSync(join(path!, 'manifest.json')), `server ${serverId}: the snapshot exists and holds manifest.json`);
    const manifest = JSON.parse(readFileSync(join(path!, 'manifest.json'), 'utf8')) as { serverId: string; name: string };
    t.equal(manifest.serverId, serverId, `server ${serverId}: the manifest is its own`);
    t.equal(manifest.name, 'snap1', `server ${serverId}: the manifest names the backup`);
  }
  const bin = join(out, 'snap1.coordinator.bin');
  t.ok(existsSync(bin) && statSync(bin).size > 0, 'DIR/NAME.coordinator.bin is written');
  t.match(result.stderr, /freeze: [\d.]+ ms/, 'stderr reports the freeze');

  const again = await kv(t, ['backup', 'snap1', '--out', out, '--coordinator', cluster.coordinator.address]);
  t.not(again.code, 0, 'a second backup with the same name is refused');
  t.match(again.stderr, /snap1 exists already/, 'because the snapshot exists already');
  t.ok(rows.every(([, , path]) => existsSync(join(path!, 'manifest.json'))), 'and the refused one did not delete the first');

  const release = await kv(t, ['backup-release', 'snap1', '--coordinator', cluster.coordinator.address]);
  t.equal(release.code, 0, 'kv backup-release exits 0');
  t.equal(release.stdout.trim().split('\n').filter((l) => / released$/.test(l)).length, 3, 'it reports every daemon released');
  for (const [serverId, , path] of rows) t.notOk(existsSync(path!), `server ${serverId}: the snapshot is gone`);
  const twice = await kv(t, ['backup-release', 'snap1', '--coordinator', cluster.coordinator.address]);
  t.equal(twice.code, 0, 'releasing again exits 0');
  t.equal(twice.stdout.trim().split('\n').filter((l) => / had no such snapshot$/.test(l)).length, 3, 'and says there was nothing to release');
  t.equal(await client.count('s'), 50, 'the data is untouched');

  // Names are directory names below DATA/backups/: `.` and `..` would name that directory and the data dir itself.
  for (const name of ['..', '.']) {
    const refused = await kv(t, ['backup-release', name, '--coordinator', cluster.coordinator.address]);
    t.equal(refused.code, 2, `kv backup-release ${name} is refused as a bad request (${refused.stderr.trim().split('\n').at(-1)})`);
    t.match(refused.stderr, /\(BAD_REQUEST\)/, 'BAD_REQUEST');
    const backup = await kv(t, ['backup', name, '--out', out, '--coordinator', cluster.coordinator.address]);
    t.equal(backup.code, 2, `kv backup ${name} is refused as a bad request (${backup.stderr.trim().split('\n').at(-1)})`);
  }
  for (const d of cluster.daemons) {
    t.ok(existsSync(join(d.dataDir, 'leveldb', 'CURRENT')), `daemon ${d.serverId}: the live database is still in its data dir`);
  }
  t.equal(await client.count('s'), 50, 'and the data is still there');
});

t.test('backup-manager is incremental: unchanged table files are hard links to the previous backup', async (t) => {
  const { cluster, client } = await seeded(t, 4000);
  const root = tempDir(t, 'kv-backups-');

  const first = await backupManager(t, cluster.coordinator.address, root);
  t.equal(first.previous, null, 'the first backup has no previous one');
  t.equal(first.totals.linkedBytes, 0, 'the first backup links nothing');
  const firstDir = join(root, first.name);
  const tableCount = first.servers.reduce((n, s) => n + tables(firstDir, s.serverId).length, 0);
  t.ok(tableCount >= 6, `the first backup holds LevelDB table files (${tableCount})`);

  await Promise.all(Array.from({ length: 5 }, (_, i) => client.put('s', `k${i}`, { i, changed: true })));
  // Straight after the first: backup-manager names backups by the second, and waits for a free one.
  const second = await backupManager(t, cluster.coordinator.address, root);
  const secondDir = join(root, second.name);
  t.ok(second.name > first.name, 'a new backup, named after a later second');
  t.equal(second.previous, first.name, 'linked against the first');

  let shared = 0;
  const differentInode: string[] = [];
  for (const s of second.servers) {
    for (const name of tables(secondDir, s.serverId)) {
      const before = join(firstDir, s.serverId, 'leveldb', name);
      if (!existsSync(before)) continue;
      shared++;
      if (statSync(before).ino !== statSync(join(secondDir, s.serverId, 'leveldb', name)).ino) differentInode.push(`${s.serverId}/${name}`);
    }
  }
  t.ok(shared >= 6, `table files of the first backup are in the second (${shared})`);
  t.same(differentInode, [], 'every one of them is the same inode as in the first backup');

  const totals = readSummary(secondDir).totals;
  t.same(totals, second.totals, 'backup.json holds the totals backup-manager printed');
  t.ok(totals.linkedBytes > 0, `linkedBytes > 0 (${totals.linkedBytes})`);
  t.ok(totals.copiedBytes * 4 < totals.bytes, `copiedBytes (${totals.copiedBytes}) is much smaller than bytes (${totals.bytes})`);
  t.ok(totals.linkedBytes < totals.bytes, 'not everything is linked: the changed files were copied');
  t.ok(first.totals.copiedBytes >= first.totals.bytes, 'the first backup copied everything');

  t.equal(readFileSync(join(root, 'LATEST'), 'utf8').trim(), second.name, 'LATEST names the second backup');
  const list = await kv(t, ['list-backups', root]);
  t.equal(list.code, 0, 'list-backups exits 0');
  const rows = list.stdout.trim().split('\n').slice(1);
  t.equal(rows.length, 2, 'list-backups lists two backups');
  t.ok(rows[0]!.startsWith(first.name) && !rows[0]!.includes('LATEST'), 'the first, not LATEST');
  t.ok(rows[1]!.startsWith(second.name) && rows[1]!.includes('(LATEST)'), 'the second, marked LATEST');
  for (const b of [first, second]) {
    const verify = await kv(t, ['verify-backup', join(root, b.name)]);
    t.equal(verify.code, 0, `verify-backup ${b.name} exits 0 (${verify.stdout.trim().split('\n').at(-1)}${verify.stderr.slice(-500)})`);
    t.match(verify.stdout, /is intact/, 'and says the backup is intact');
  }
});

t.test('--keep 2 after three backups keeps the two newest, and they still verify', async (t) => {
  const { cluster, client } = await seeded(t, 2500);
  const root = tempDir(t, 'kv-backups-');
  const made: BackupSummary[] = [];
  /** Table files of the second backup that are hard links to the first's: they must outlive its pruning. */
  let sharedWithOldest: Array<{ path: string; ino: number }> = [];
  for (let i = 0; i < 3; i++) {
    await client.put('s', `round${i}`, { i });
    made.push(await backupManager(t, cluster.coordinator.address, root, ['--keep', '2']));
    if (i === 1) {
      const [a, b] = made.map((m) => join(root, m.name)) as [string, string];
      sharedWithOldest = made[1]!.servers.flatMap((s) =>
        tables(b, s.serverId)
          .map((n) => ({ path: join(b, s.serverId, 'leveldb', n), ino: statSync(join(b, s.serverId, 'leveldb', n)).ino }))
          .filter((f) => existsSync(join(a, s.serverId, 'leveldb', f.path.split('/').at(-1)!)) &&
            statSync(join(a, s.serverId, 'leveldb', f.path.split('/').at(-1)!)).ino === f.ino),
      );
      t.equal(readdirSync(root).filter((n) => n !== 'LATEST').length, 2, 'two backups are kept as they are (--keep 2)');
    }
  }
  const [oldest, middle, newest] = made as [BackupSummary, BackupSummary, BackupSummary];
  t.ok(middle.totals.linkedBytes > 0, 'the second backup shares files with the first');
  t.ok(newest.totals.linkedBytes > 0, 'the third shares files with the second');
  t.ok(sharedWithOldest.length > 0, `the second backup had table files hard-linked to the first (${sharedWithOldest.length})`);

  const entries = readdirSync(root).sort();
  t.same(entries, [middle.name, newest.name, 'LATEST'].sort(), 'exactly the two newest backups (and LATEST) remain');
  t.notOk(existsSync(join(root, oldest.name)), 'the oldest is gone');
  t.equal(readFileSync(join(root, 'LATEST'), 'utf8').trim(), newest.name, 'LATEST names the newest');
  const lost = sharedWithOldest.filter((f) => !existsSync(f.path) || statSync(f.path).ino !== f.ino);
  t.same(lost, [], 'every file the pruned backup shared is still there, the same inode');
  for (const b of [middle, newest]) {
    const verify = await kv(t, ['verify-backup', join(root, b.name)]);
    t.equal(verify.code, 0, `verify-backup ${b.name} exits 0 after pruning (${verify.stdout.trim().split('\n').slice(-2).join(' / ')})`);
  }
  const list = await kv(t, ['list-backups', root, '--json']);
  t.same((JSON.parse(list.stdout) as Array<{ name: string }>).map((r) => r.name), [middle.name, newest.name], 'list-backups lists the two kept');
});

t.test('verify-backup finds a corrupted table file or log and names it', async (t) => {
  const { cluster, client } = await seeded(t, 2500);
  const root = tempDir(t, 'kv-backups-');
  const previous = (await backupManager(t, cluster.coordinator.address, root)).name;
  // Writes after the first backup, so the second has table files linked to the first and a non-empty log.
  await load(client, 's', 300, 'late');
  const summary = await backupManager(t, cluster.coordinator.address, root);
  const backupDir = join(root, summary.name);
  t.ok(summary.totals.linkedBytes > 0, 'the backup shares table files with the previous one');

  // Damage private copies (cpSync writes new files, never links), never the shared inodes.
  const damage = (copyName: string, pick: (file: string) => boolean) => {
    const copy = join(root, copyName);
    cpSync(backupDir, copy, { recursive: true });
    for (const s of summary.servers) {
      const file = filesUnder(join(copy, s.serverId)).find((f) => pick(f) && statSync(join(copy, s.serverId, f)).size > 0);
      if (!file) continue;
      const path = join(copy, s.serverId, file);
      t.equal(statSync(path).nlink, 1, `${file} in the copy is not shared with any backup`);
      const bytes = readFileSync(path);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = bytes[at]! ^ 0xff;
      writeFileSync(path, bytes);
      return { copy, serverId: s.serverId, file };
    }
    throw new Error(`no file to damage in ${copy}`);
  };

  for (const [label, pick] of [
    ['table', (f: string) => /^leveldb\/\d+\.(ldb|sst)$/.test(f)],
    ['log', (f: string) => /^leveldb\/\d+\.log$/.test(f)],
  ] as const) {
    const damaged = damage(`damaged-${label}`, pick);
    const verify = await kv(t, ['verify-backup', damaged.copy]);
    t.equal(verify.code, 1, `verify-backup of a backup with a damaged ${label} exits 1`);
    t.match(verify.stdout, new RegExp(`FAIL ${damaged.serverId}: .*${damaged.file.replace('.', '\\.')} does not match its checksum`), `it names ${damaged.file} of server ${damaged.serverId}`);
    t.match(verify.stdout, /is damaged/, 'and says the backup is damaged');
    const json = await kv(t, ['verify-backup', damaged.copy, '--json']);
    const verdict = JSON.parse(json.stdout) as { ok: boolean; servers: Array<{ serverId: string; ok: boolean }> };
    t.equal(json.code, 1, '--json exits 1 too');
    t.same(verdict.servers.filter((s) => !s.ok).map((s) => s.serverId), [damaged.serverId], 'only the damaged server fails');
  }

  for (const name of [previous, summary.name]) {
    const intact = await kv(t, ['verify-backup', join(root, name)]);
    t.equal(intact.code, 0, `the original ${name} still verifies (the damage touched no shared file)`);
  }
});

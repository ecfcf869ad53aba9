// shared/data-format.ts: a data dir (daemon's, coordinator's, a backup's copy) or a coordinator state of a newer
// format is refused untouched, with one line and exit 1; a dir from before format stamps still opens.
import t from 'tap';
import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pack, unpack } from '../shared/codec.js';
import { encodeState } from '../shared/state-file.js';
import { newCluster } from '../coordinator/cluster.js';
import { readManifest } from '../shared/snapshot-manifest.js';
import { Client } from '../shared/client.js';
import { kv, messageLines, startCluster, startCoordinator, startDaemon, tempDir, waitFor } from './helpers/cluster.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
import { backupManager } from './helpers/backup.js';

/** Every file under `dir` with its size, mtime and SHA-256: what "nothing in it changed" compares. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else {
        const stat = statSync(path);
        out[relative(dir, path)] = `${stat.size} ${stat.mtimeMs} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
      }
    }
  };
  walk(dir);
  return out;
}

const stamp = (kind: 'daemon' | 'coordinator', formatVersion: number) =>
  `${JSON.stringify({ format: `kv-${kind}-data`, formatVersion })}\n`;

/** Runs `kv args` expecting a refusal: exit 1, one DATA_DIR_INVALID line matching `pattern`, `dir` untouched. */
async function refusedUntouched(t: TapTest, args: string[], dir: string, pattern: RegExp) {
  const before = fingerprint(dir);
  const result = await kv(t, args);
  const lines = messageLines(result.stderr);
  t.equal(result.code, 1, `exit 1 (${lines.join(' | ')})`);
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0] ?? '', pattern);
  t.match(lines[0] ?? '', /\(DATA_DIR_INVALID\)$/);
  t.same(fingerprint(dir), before, 'nothing in the dir changed');
}

t.test('daemon and coordinator data dirs of a newer format are refused untouched; unstamped ones open and are stamped', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 2 });
  await client.put('s', 'k', { v: 1 });
  const daemon = cluster.daemons[0]!;
  const coordinator = cluster.coordinator;
  t.same(readFileSync(join(daemon.dataDir, 'format.json'), 'utf8'), stamp('daemon', 1), 'a new daemon dir is stamped format 1');
  t.same(readFileSync(join(coordinator.dataDir, 'format.json'), 'utf8'), stamp('coordinator', 1), 'and a new coordinator dir');
  t.equal(await daemon.proc.stop(), 0);
  const { clusterId } = await client.showConfig();
  await client.close();
  t.equal(await coordinator.proc.stop(), 0);

  // A newer kv wrote these: refused before LevelDB is opened (which would rewrite CURRENT, the MANIFEST, the log).
  writeFileSync(join(daemon.dataDir, 'format.json'), stamp('daemon', 2));
  writeFileSync(join(coordinator.dataDir, 'format.json'), stamp('coordinator', 2));
  await refusedUntouched(t, ['daemon', '--listen-port', '0', '--coordinator', '127.0.0.1:1', '--data', daemon.dataDir], daemon.dataDir,
    /daemon data format 2, written by a newer kv; this kv reads format 1/);
  await refusedUntouched(t, ['coordinator', '--port', '0', '--data', coordinator.dataDir], coordinator.dataDir,
    /coordinator data format 2, written by a newer kv; this kv reads format 1/);

  // One kind's dir is not the other's.
  writeFileSync(join(coordinator.dataDir, 'format.json'), stamp('coordinator', 1));
  await refusedUntouched(t, ['daemon', '--listen-port', '0', '--coordinator', '127.0.0.1:1', '--data', coordinator.dataDir], coordinator.dataDir,
    /cannot be used as a kv daemon data dir: it is a coordinator's data dir/);
  writeFileSync(join(daemon.dataDir, 'format.json'), 'not json');
  await refusedUntouched(t, ['daemon', '--listen-port', '0', '--coordinator', '127.0.0.1:1', '--data', daemon.dataDir], daemon.dataDir, /format\.json is not JSON/);

  // Dirs from before format stamps (today's, with no format.json) open as format 1, and are stamped.
  rmSync(join(daemon.dataDir, 'format.json'));
  rmSync(join(coordinator.dataDir, 'format.json'));
  const again = await startCoordinator(t, { dataDir: coordinator.dataDir });
  const back = await startDaemon(t, again.address, { dataDir: daemon.dataDir });
  t.equal(back.serverId, daemon.serverId, 'the unstamped daemon dir keeps its identity');
  t.same(readFileSync(join(daemon.dataDir, 'format.json'), 'utf8'), stamp('daemon', 1), 'and is stamped format 1');
  t.same(readFileSync(join(coordinator.dataDir, 'format.json'), 'utf8'), stamp('coordinator', 1));
  const restarted = await Client.connect(again.address, { timeoutMs: 20_000 });
  t.teardown(() => restarted.close());
  t.equal((await restarted.showConfig()).clusterId, clusterId, 'the unstamped coordinator dir keeps its cluster');
  t.same(await waitFor('the key to be served again', () => restarted.get('s', 'k')), { v: 1 }, 'and the data is there');
});

t.test("a backup's copies carry the stamp: a restore by a kv that cannot read them is refused untouched", async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 2 });
  await client.put('s', 'k', { v: 1 });
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, cluster.coordinator.address, root);
  const copy = join(root, summary.name, summary.servers[0]!.serverId);
  t.same(readFileSync(join(copy, 'format.json'), 'utf8'), stamp('daemon', 1), 'the copy holds its daemon format');
  t.ok(readManifest(copy).files.some((f) => f.path === 'format.json'), 'listed (and checksummed) in its manifest');
  const verify = await kv(t, ['verify-backup', join(root, summary.name)]);
  t.equal(verify.code, 0, 'the backup verifies');

  const restoreDir = join(tempDir(t, 'kv-restore-'), 'd');
  cpSync(copy, restoreDir, { recursive: true });
  writeFileSync(join(restoreDir, 'format.json'), stamp('daemon', 2));
  await refusedUntouched(t, ['daemon', '--listen-port', '0', '--coordinator', '127.0.0.1:1', '--data', restoreDir], restoreDir,
    /daemon data format 2, written by a newer kv/);
});

t.test('a coordinator state of a newer format is refused, with one line and exit 1', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'coordinator.bin');
  const envelope = unpack(encodeState(newCluster('7'))) as Record<string, unknown>;
  writeFileSync(file, pack({ ...envelope, formatVersion: 2 }));
  const data = join(dir, 'coord');
  const result = await kv(t, ['coordinator', '--port', '0', '--data', data, '--restore', file]);
  const lines = messageLines(result.stderr);
  t.equal(result.code, 1);
  t.equal(lines.length, 1, `one line (${lines.join(' | ')})`);
  t.match(lines[0] ?? '', /coordinator\.bin is not a kv coordinator state: format version 2, written by a newer kv; this kv reads version 1 \(DATA_DIR_INVALID\)$/);
});

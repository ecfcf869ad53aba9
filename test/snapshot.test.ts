// daemon/snapshot.ts on a real LevelDB: the capture hard-links the write-ahead log and the MANIFEST and notes their
// lengths, and the seal keeps exactly those bytes, so writes made after the capture (appended to the very same
// files) are not in the snapshot; tables added or compacted away between prepare and capture are linked or
// dropped; and the sealed snapshot opens as a database holding what was written before the capture.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { capture, prepare, seal } from '../daemon/snapshot.js';
import { HashPool } from '../shared/hash-pool.js';
import { levelDir, snapshotDir } from '../shared/data-dir.js';
import { readManifest } from '../shared/snapshot-manifest.js';
import { tempDir } from './helpers/cluster.js';

type Db = ClassicLevel<Buffer, Buffer>;

async function open(location: string): Promise<Db> {
  // LevelDB's smallest write buffer, so a few hundred KiB of writes make several tables and compactions.
  const db = new ClassicLevel<Buffer, Buffer>(location, { keyEncoding: 'buffer', valueEncoding: 'buffer', writeBufferSize: 64 * 1024 });
  await db.open();
  return db;
}

async function write(db: Db, prefix: string, count: number): Promise<void> {
  const batch = db.batch();
  for (let i = 0; i < count; i++) batch.put(Buffer.from(`${prefix}-${String(i).padStart(5, '0')}`), randomBytes(512));
  await batch.write();
}

async function keysOf(location: string): Promise<string[]> {
  const db = await open(location);
  try {
    return (await db.keys().all()).map((k) => k.toString());
  } finally {
    await db.close();
  }
}

const identity = { name: 'n', serverId: '1', clusterId: 'c', configVersion: 1, freezeId: 'f', capturedAt: new Date().toISOString() };

t.test('writes after the capture are not in the sealed snapshot; tables changed after prepare are', async (t) => {
  const dataDir = tempDir(t);
  const db = await open(levelDir(dataDir));
  t.teardown(() => db.close());
  for (let round = 0; round < 8; round++) await write(db, `before${round}`, 200);
  const dir = snapshotDir(dataDir, 'n');
  const prepared = prepare(dataDir, dir);
  t.ok(prepared && prepared.linked.size > 0, `prepare linked ${prepared?.linked.size} tables`);
  // Between prepare and capture: new values for the same keys, and a full compaction merging them into new
  // tables, so some prepare linked are dropped and others added.
  for (let round = 0; round < 8; round++) await write(db, `before${round}`, 200);
  for (let round = 0; round < 8; round++) await write(db, `between${round}`, 200);
  await db.compactRange(Buffer.alloc(0), Buffer.alloc(64, 0xff));
  await write(db, 'last', 50); // in the write-ahead log only
  const captured = capture(dataDir, dir, prepared);
  t.equal(captured.attempts, 1);
  t.ok(captured.tablesLinked > 0, `the capture linked the ${captured.tablesLinked} tables made since prepare`);
  const prefixes = captured.files.filter((f) => f.kind === 'prefix');
  t.ok(prefixes.some((f) => f.path.endsWith('.log')) && prefixes.some((f) => /MANIFEST-\d+$/.test(f.path)), 'the log and the MANIFEST are linked, with lengths');
  const tables = new Set(captured.files.filter((f) => f.kind === 'table').map((f) => f.path.slice('leveldb/'.length)));
  const linkedDropped = [...prepared!.linked.values()].filter((name) => !tables.has(name));
  t.ok(linkedDropped.length > 0, `the compaction dropped tables prepare linked (${linkedDropped.length})`);
  t.same(captured.stale.sort(), linkedDropped.map((name) => `leveldb/${name}`).sort(), 'their links are left for the seal, named as stale');
  const tablesIn = () => readdirSync(levelDir(dir)).filter((n) => /\.(ldb|sst)$/.test(n)).sort();
  t.same(tablesIn(), [...tables, ...linkedDropped].sort(), 'the capture unlinked nothing (that can be slow: it is inside the freeze)');

  // After the thaw: more writes, appended to the same log inode (and flushes appending to the same MANIFEST).
  for (let round = 0; round < 6; round++) await write(db, `after${round}`, 200);
  const logPrefix = prefixes.find((f) => f.path.endsWith('.log'))!;
  t.ok(statSync(join(dir, logPrefix.path)).size > logPrefix.bytes, 'the linked log grew past its captured length');

  const pool = new HashPool(2);
  t.teardown(() => pool.close());
  const manifest = await seal(dir, captured, identity, new Map(), pool);
  for (const f of prefixes) t.equal(statSync(join(dir, f.path)).size, f.bytes, `${f.path} sealed at its captured length`);
  t.same(tablesIn(), [...tables].sort(), 'after the seal the snapshot holds exactly the tables listed');
  t.same(manifest.files.filter((f) => /\.(ldb|sst)$/.test(f.path)).map((f) => f.path.slice('leveldb/'.length)).sort(), [...tables].sort(), 'and its manifest lists exactly those');
  t.same(readManifest(dir).files, manifest.files, 'the manifest is on disk');

  // Opened (a scratch copy: opening rewrites a database's directory): what was written before the capture, only.
  const scratch = join(tempDir(t), 'db');
  const { cpSync } = await import('node:fs');
  cpSync(levelDir(dir), scratch, { recursive: true });
  const keys = await keysOf(scratch);
  t.equal(keys.filter((k) => k.startsWith('before')).length, 8 * 200, 'every write before prepare');
  t.equal(keys.filter((k) => k.startsWith('between')).length, 8 * 200, 'every write between prepare and capture');
  t.equal(keys.filter((k) => k.startsWith('last')).length, 50, 'the writes only in the log at the capture');
  t.equal(keys.filter((k) => k.startsWith('after')).length, 0, 'none of the writes after the capture');
});

t.test('a capture without a prepare links everything itself', async (t) => {
  const dataDir = tempDir(t);
  const db = await open(levelDir(dataDir));
  t.teardown(() => db.close());
  for (let round = 0; round < 4; round++) await write(db, `k${round}`, 200);
  const captured = capture(dataDir, snapshotDir(dataDir, 'n'));
  const tables = captured.files.filter((f) => f.kind === 'table').length;
  t.ok(tables > 0);
  t.equal(captured.tablesLinked, tables, 'every table linked inside the capture');
});

// daemon/leveldb-manifest.ts against MANIFESTs that classic-level's LevelDB wrote: after flushes, after
// compactions, one whose record spans blocks, a torn tail, and damaged bytes.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { maskedCrc, parseManifest, readRecords, readVersion, readVersionOn, type LevelState } from '../daemon/leveldb-manifest.js';
import { tempDir } from './helpers/cluster.js';

type Db = ClassicLevel<Buffer, Buffer>;

async function openDb(location: string): Promise<Db> {
  // LevelDB's smallest write buffer, so a few hundred KiB of writes make several table files.
  const db = new ClassicLevel<Buffer, Buffer>(location, { keyEncoding: 'buffer', valueEncoding: 'buffer', writeBufferSize: 64 * 1024 });
  await db.open();
  return db;
}

const manifestOf = (location: string): Buffer =>
  readFileSync(join(location, readFileSync(join(location, 'CURRENT'), 'utf8').trim()));

/** LevelDB's own view of the current version: table file number → size, from leveldb.sstables. */
function liveTables(db: Db): Map<number, number> {
  const tables = new Map<number, number>();
  for (const match of db.getProperty('leveldb.sstables').matchAll(/^ (\d+):(\d+)\[/gm)) tables.set(Number(match[1]), Number(match[2]));
  return tables;
}

/** LevelDB's own view of each table's level (file number → level), from the level headers of leveldb.sstables. */
function liveLevels(db: Db): Map<number, number> {
  const levels = new Map<number, number>();
  let level = -1;
  for (const line of db.getProperty('leveldb.sstables').split('\n')) {
    const header = /^--- level (\d+) ---$/.exec(line);
    if (header) level = Number(header[1]);
    const table = /^ (\d+):\d+\[/.exec(line);
    if (table) levels.set(Number(table[1]), level);
  }
  return levels;
}

/**
 * The MANIFEST parsed at a moment LevelDB's version did not change around the read: a background compaction may
 * run at any time, and LevelDB writes its edit to the MANIFEST before it installs the new version. Tries a bounded
 * number of times, so a parse that never agrees fails the test's comparison instead of hanging.
 */
function stableParse(db: Db, location: string): { state: ReturnType<typeof parseManifest>; listed: Map<number, number> } {
  const key = (tables: Map<number, number>) => JSON.stringify([...tables].sort());
  for (let attempt = 1; ; attempt++) {
    const listed = liveTables(db);
    const state = parseManifest(manifestOf(location));
    if (attempt === 50 || (key(state.tables) === key(listed) && key(liveTables(db)) === key(listed))) return { state, listed };
  }
}

const tableFiles = (location: string): number[] =>
  readdirSync(location).filter((name) => /^\d+\.(ldb|sst)$/.test(name)).map((name) => Number.parseInt(name, 10)).sort((a, b) => a - b);

async function writeBatch(db: Db, count: number, keyBytes = 16, valueBytes = 1024): Promise<void> {
  const batch = db.batch();
  for (let i = 0; i < count; i++) batch.put(randomBytes(keyBytes), randomBytes(valueBytes));
  await batch.write();
}

/** Physical records of a log-format file that holds no fragmented record and no block trailer: offset, length. */
function physicalRecords(bytes: Buffer): Array<{ offset: number; length: number }> {
  const records = [];
  for (let offset = 0; offset + 7 <= bytes.length; ) {
    const length = bytes.readUInt16LE(offset + 4);
    records.push({ offset, length });
    offset += 7 + length;
  }
  return records;
}

t.test('the tables after flushes and compactions are the ones LevelDB lists', async (t) => {
  const location = join(tempDir(t), 'db');
  const db = await openDb(location);
  t.teardown(() => db.close());
  const seen = new Set<number>();
  for (let round = 0; round < 12; round++) {
    await writeBatch(db, 300);
    const { state, listed } = stableParse(db, location);
    t.same([...state.tables].sort(), [...listed].sort(), `after write round ${round + 1}`);
    for (const number of state.tables.keys()) seen.add(number);
  }
  t.ok(seen.size >= 4, `several tables were made (${seen.size})`);
  await db.compactRange(Buffer.alloc(0), Buffer.alloc(64, 0xff));
  const { state: compacted, listed } = stableParse(db, location);
  t.same([...compacted.tables].sort(), [...listed].sort(), 'after a full compaction');
  t.same([...compacted.levels].sort(), [...liveLevels(db)].sort(), 'and each table at the level LevelDB lists it at');
  t.ok([...compacted.levels.values()].some((level) => level > 0), 'a full compaction moves tables below level 0');
  t.ok([...seen].some((number) => !compacted.tables.has(number)), 'the compaction deleted tables, and the parse dropped them');
  t.ok(compacted.nextFileNumber > Math.max(...compacted.tables.keys()), 'the next file number is past every table');
  const logs = readdirSync(location).filter((name) => name.endsWith('.log')).map((name) => Number.parseInt(name, 10));
  t.ok(logs.includes(compacted.logNumber), `the log recovery replays (${compacted.logNumber}) is there: ${logs.join(', ')}`);
});

t.test('a reopened database: its new MANIFEST, and a record spanning blocks', async (t) => {
  const location = join(tempDir(t), 'db');
  let db = await openDb(location);
  // Long keys make long edits: each table's smallest and largest key are in its NewFile field.
  for (let round = 0; round < 40; round++) await writeBatch(db, 20, 3000, 16);
  await db.close();
  // A compaction cut short by the close may leave its output behind, unlisted: the reason to parse at all.
  const closed = [...parseManifest(manifestOf(location)).tables.keys()];
  t.same(closed.filter((number) => !tableFiles(location).includes(number)), [], 'every table the closed MANIFEST lists is there');
  db = await openDb(location);
  t.teardown(() => db.close());
  // The reopened MANIFEST's first record lists every table; how many there are depends on how far LevelDB's
  // background compactions got before the close (a loaded machine gets less far). Until it spans blocks: more
  // tables, reopened again (bounded).
  for (let reopened = 1; readRecords(manifestOf(location))[0]!.length <= 32 * 1024 && reopened < 6; reopened++) {
    for (let round = 0; round < 20; round++) await writeBatch(db, 20, 3000, 16);
    await db.close();
    db = await openDb(location);
  }
  const bytes = manifestOf(location);
  const { state, listed } = stableParse(db, location);
  t.same([...state.tables].sort(), [...listed].sort(), 'the MANIFEST of the reopened database');
  t.ok(bytes.length > 32 * 1024, `the MANIFEST spans blocks (${bytes.length} bytes)`);
  t.ok(readRecords(bytes)[0]!.length > 32 * 1024, 'its first record is fragmented over blocks, and joined again');
});

t.test('a torn tail ends the records; damage anywhere else is refused', async (t) => {
  const location = join(tempDir(t), 'db');
  const db = await openDb(location);
  t.teardown(() => db.close());
  for (let round = 0; round < 4; round++) await writeBatch(db, 300);
  const bytes = manifestOf(location);
  t.ok(bytes.length < 32 * 1024, 'one block: every record is whole');
  const physical = physicalRecords(bytes);
  t.ok(physical.length >= 3, `several edits (${physical.length})`);
  const full = readRecords(bytes);
  t.equal(full.length, physical.length);
  const last = physical.at(-1)!;
  t.equal(last.offset + 7 + last.length, bytes.length, 'the last record ends the file');

  // A MANIFEST read while LevelDB appends to it: the last record cut anywhere, header included.
  for (const cut of [last.offset + 3, last.offset + 7, last.offset + 7 + Math.floor(last.length / 2), bytes.length - 1]) {
    const torn = bytes.subarray(0, cut);
    t.same(readRecords(torn), full.slice(0, -1), `cut at byte ${cut} of ${bytes.length}: the edits before it`);
  }
  const withoutLast = parseManifest(bytes.subarray(0, last.offset));
  t.same(parseManifest(bytes.subarray(0, bytes.length - 1)), withoutLast, 'the state before the torn edit');

  // Every byte of every record but the last, flipped (a length byte may instead make the record run past the
  // end of the file, which reads as a torn tail, as in LevelDB: those are left out).
  let tried = 0;
  const accepted: number[] = [];
  for (const { offset, length } of physical.slice(0, -1)) {
    for (let at = offset; at < offset + 7 + length; at++) {
      if (at === offset + 4 || at === offset + 5) continue;
      const damaged = Buffer.from(bytes);
      damaged[at] = damaged[at]! ^ 0x01;
      tried++;
      try {
        readRecords(damaged);
        accepted.push(at);
      } catch (error) {
        if ((error as { code?: string }).code !== 'DATA_DIR_INVALID') throw error;
      }
    }
  }
  t.ok(tried > 100, `${tried} damaged copies tried`);
  t.same(accepted, [], 'every one refused');
  const damaged = Buffer.from(bytes);
  damaged[physical[1]!.offset + 7] = damaged[physical[1]!.offset + 7]! ^ 0xff;
  t.throws(() => parseManifest(damaged), { code: 'DATA_DIR_INVALID', message: `checksum mismatch in the record at byte ${physical[1]!.offset}` });
});

t.test('reading on from a reading of a shorter MANIFEST gives the reading of the whole, wherever it was cut', async (t) => {
  const location = join(tempDir(t), 'db');
  let db = await openDb(location);
  // Long keys make edits that span blocks (fragments, block trailers), reopened so the new MANIFEST starts big.
  for (let round = 0; round < 40; round++) await writeBatch(db, 20, 3000, 16);
  await db.close();
  db = await openDb(location);
  t.teardown(() => db.close());
  // Each flush and compaction appends an edit; how many a round makes depends on how far the background
  // compactions get (a loaded machine gets less far): rounds until the MANIFEST spans blocks (bounded), then
  // closed, which waits for LevelDB's background work, so the file read is at rest.
  for (let round = 0; manifestOf(location).length <= 2 * 32 * 1024 + 4096 && round < 60; round++) await writeBatch(db, 300);
  await db.close();
  const bytes = manifestOf(location);
  t.ok(bytes.length > 2 * 32 * 1024, `the MANIFEST spans blocks (${bytes.length} bytes)`);
  const whole = readVersion(bytes);
  t.equal(whole.end, bytes.length, 'a MANIFEST at rest ends with a whole record');
  const key = (s: LevelState) => JSON.stringify([[...s.tables].sort(), [...s.levels].sort(), s.logNumber, s.prevLogNumber, s.nextFileNumber]);
  let cuts = 0;
  const wrong: number[] = [];
  for (let cut = 0; cut <= bytes.length; cut += 211) {
    const earlier = readVersion(bytes.subarray(0, cut));
    const before = key(earlier.state);
    const on = readVersionOn(earlier, bytes.subarray(earlier.end));
    cuts++;
    if (earlier.end > cut || key(on.state) !== key(whole.state) || on.end !== whole.end || key(earlier.state) !== before) wrong.push(cut);
  }
  t.ok(cuts > 300, `${cuts} cuts tried`);
  t.same(wrong, [], 'every one reads on to the whole state, its earlier reading untouched');
  const torn = readVersionOn(readVersion(bytes.subarray(0, 100)), bytes.subarray(readVersion(bytes.subarray(0, 100)).end, bytes.length - 1));
  t.ok(torn.end < bytes.length, 'reading on into a torn record stops before it');
});

t.test('the CRC is LevelDB masked CRC32C', async (t) => {
  // CRC32C("123456789") is 0xe3069283 (RFC 3720's check value); here over type byte '1' and payload "23456789".
  const crc = 0xe3069283;
  t.equal(maskedCrc(0x31, Buffer.from('23456789')), ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0);
  const location = join(tempDir(t), 'db');
  const db = await openDb(location);
  await db.close();
  const bytes = manifestOf(location);
  const length = bytes.readUInt16LE(4);
  t.equal(bytes.readUInt32LE(0), maskedCrc(bytes[6]!, bytes.subarray(7, 7 + length)), "the first record's stored CRC");
});

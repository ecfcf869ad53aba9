// Snapshots of the daemon's LevelDB, in three phases:
//  prepare (before the freeze): read the MANIFEST and hard-link the table files it lists now. Tables never change
//    once written, so this is most of the capture's work done while writes still flow;
//  capture (while writes are frozen): read the MANIFEST on from where prepare stopped, link the tables added since
//    (and unlink those dropped), copy CURRENT, and hard-link the MANIFEST and the write-ahead logs recovery would
//    replay, noting their lengths: LevelDB only ever appends to them (classic-level never sets reuse_logs), so
//    their first bytes up to those lengths are the snapshot's, whatever is appended after the thaw. Synchronous
//    fs calls only, so nothing queues behind reads in libuv's thread pool; retried if a compaction removed a file
//    meanwhile;
//  seal (after the thaw): remove the links to tables the capture found dropped (unlinking can be slow: see
//    Capture.stale), replace each link to an appended file with a copy of its captured length, checksum every
//    file, fsync, and write the manifest durably.
// A snapshot never opens the database it copies, and the live database is never touched.
import { closeSync, copyFileSync, fstatSync, linkSync, mkdirSync, openSync, readSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { KvError } from '../shared/errors.js';
import type { HashPool } from '../shared/hash-pool.js';
import { fsyncPath, writeFileDurably } from '../shared/durable-file.js';
import { captureAttemptsMax } from '../shared/limits.js';
import { manifestFileName, newManifest, type SnapshotFile, type SnapshotManifest } from '../shared/snapshot-manifest.js';
import { readVersion, readVersionOn, type ManifestReading } from './leveldb-manifest.js';
import { levelDir } from '../shared/data-dir.js';
import { formatFile, formatFileName, formatStamp } from '../shared/data-format.js';

export interface CapturedFile {
  /** Relative to the snapshot's directory. */
  path: string;
  bytes: number;
  /**
   * table: a hard link to an immutable table (synced by LevelDB when it wrote it);
   * prefix: a hard link to a file LevelDB appends to, of which the first `bytes` are the snapshot's (seal copies them);
   * copy: written by the capture.
   */
  kind: 'table' | 'prefix' | 'copy';
}

export interface Capture {
  files: CapturedFile[];
  /**
   * Links (relative paths) to tables the captured version no longer lists, left for the seal to remove after the
   * thaw: such a table is usually deleted from the database already, so removing the link frees its blocks, which
   * took 33 ms inside one freeze at 1 GB (ext4, mounted with discard) against a capture of under 2 ms otherwise.
   */
  stale: string[];
  attempts: number;
  ms: number;
  /** Tables linked inside the freeze: those prepare had not linked (all of them without a prepare, or on a retry). */
  tablesLinked: number;
}

/** What prepare() found, so the capture inside the freeze reads and links only what changed since. */
export interface Prepared {
  manifestName: string;
  reading: ManifestReading;
  /** The tables linked into the snapshot: file number → file name. */
  linked: Map<number, string>;
}

const isTable = (name: string) => /^\d+\.(ldb|sst)$/.test(name);

/** Links table `number` (.ldb, or .sst in older databases) into outDir; undefined when it is gone (compacted away). */
function linkTable(liveDir: string, outDir: string, number: number): string | undefined {
  const base = String(number).padStart(6, '0');
  for (const name of [`${base}.ldb`, `${base}.sst`]) {
    try {
      linkSync(join(liveDir, name), join(outDir, name));
      return name;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return undefined;
}

/**
 * Links the tables the MANIFEST lists into the snapshot (those already linked are kept: file numbers are never
 * reused, so a link made earlier is that very table); everything else in the snapshot's directory is removed.
 */
function linkTables(liveDir: string, outDir: string, tables: Map<number, number>): Map<number, string> | undefined {
  mkdirSync(outDir, { recursive: true });
  const present = new Map<number, string>();
  for (const name of readdirSync(outDir)) {
    if (isTable(name) && tables.has(Number.parseInt(name, 10))) present.set(Number.parseInt(name, 10), name);
    else unlinkSync(join(outDir, name));
  }
  return linkChanged(liveDir, outDir, present, tables);
}

/**
 * Brings links made for an earlier version up to the tables listed now: links the new, and unlinks the dropped,
 * or, given `stale`, leaves them and names them there.
 */
function linkChanged(liveDir: string, outDir: string, linked: Map<number, string>, tables: Map<number, number>, stale?: string[]): Map<number, string> | undefined {
  const now = new Map<number, string>();
  for (const [number, name] of linked) {
    if (tables.has(number)) now.set(number, name);
    else if (stale) stale.push(`leveldb/${name}`);
    else unlinkSync(join(outDir, name));
  }
  for (const number of tables.keys()) {
    if (now.has(number)) continue;
    const name = linkTable(liveDir, outDir, number);
    if (!name) return undefined;
    now.set(number, name);
  }
  return now;
}

/** The bytes of a file from `offset` on. */
function readFrom(path: string, offset: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const bytes = Buffer.alloc(Math.max(0, fstatSync(fd).size - offset));
    let read = 0;
    while (read < bytes.length) {
      const n = readSync(fd, bytes, read, bytes.length - read, offset + read);
      if (n === 0) break;
      read += n;
    }
    return bytes.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/** Before the freeze: reads the MANIFEST and links the tables listed now. Best effort: the capture completes it. */
export function prepare(dataDir: string, snapshotDir: string): Prepared | undefined {
  const liveDir = levelDir(dataDir);
  const manifestName = readFileSync(join(liveDir, 'CURRENT'), 'utf8').trim();
  const reading = readVersion(readFileSync(join(liveDir, manifestName)));
  const linked = linkTables(liveDir, levelDir(snapshotDir), reading.state.tables);
  return linked && { manifestName, reading, linked };
}

/** One try, on from what prepare found if given: undefined when the database's file set changed while it worked. */
function captureOnce(liveDir: string, snapshotDir: string, prepared: Prepared | undefined, stale: string[]): CapturedFile[] | undefined {
  const outDir = levelDir(snapshotDir);
  const current = readFileSync(join(liveDir, 'CURRENT'), 'utf8');
  const manifestName = current.trim();
  const manifestPath = join(liveDir, manifestName);
  const from = prepared?.manifestName === manifestName ? prepared : undefined;
  const reading = from ? readVersionOn(from.reading, readFrom(manifestPath, from.reading.end)) : readVersion(readFileSync(manifestPath));
  const tables = from ? linkChanged(liveDir, outDir, from.linked, reading.state.tables, stale) : linkTables(liveDir, outDir, reading.state.tables);
  if (!tables) return undefined;
  const files: CapturedFile[] = [...tables].map(([number, name]) => ({ path: `leveldb/${name}`, bytes: reading.state.tables.get(number)!, kind: 'table' }));
  writeFileSync(join(outDir, 'CURRENT'), current);
  files.push({ path: 'leveldb/CURRENT', bytes: Buffer.byteLength(current), kind: 'copy' });
  linkSync(manifestPath, join(outDir, manifestName));
  files.push({ path: `leveldb/${manifestName}`, bytes: reading.end, kind: 'prefix' });
  const { state } = reading;
  const firstLog = state.prevLogNumber > 0 ? Math.min(state.prevLogNumber, state.logNumber) : state.logNumber;
  for (const name of readdirSync(liveDir)) {
    const match = /^(\d+)\.log$/.exec(name);
    if (!match || Number(match[1]) < firstLog) continue;
    try {
      linkSync(join(liveDir, name), join(outDir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // a flush finished and dropped it
      throw error;
    }
    // Writes are frozen and those admitted before are committed: the log holds all of them now.
    files.push({ path: `leveldb/${name}`, bytes: statSync(join(outDir, name)).size, kind: 'prefix' });
  }
  // A new MANIFEST (only on reopen) would make the version read above not the database's.
  return readFileSync(join(liveDir, 'CURRENT'), 'utf8') === current ? files : undefined;
}

export function capture(dataDir: string, snapshotDir: string, prepared?: Prepared): Capture {
  const started = performance.now();
  const liveDir = levelDir(dataDir);
  for (let attempt = 1; attempt <= captureAttemptsMax; attempt++) {
    // A later attempt starts afresh: the one before may have linked some files and not others.
    const stale: string[] = [];
    const files = captureOnce(liveDir, snapshotDir, attempt === 1 ? prepared : undefined, stale);
    if (!files) continue;
    // The snapshot is a data dir of its daemon's format: a kv that cannot read it refuses its copies untouched.
    const stamp = formatStamp('daemon');
    writeFileSync(formatFile(snapshotDir), stamp);
    files.push({ path: formatFileName, bytes: Buffer.byteLength(stamp), kind: 'copy' });
    const before = new Set(attempt === 1 ? prepared?.linked.values() : []);
    const tablesLinked = files.filter((f) => f.kind === 'table' && !before.has(basename(f.path))).length;
    return { files, stale, attempts: attempt, ms: performance.now() - started, tablesLinked };
  }
  rmSync(snapshotDir, { recursive: true, force: true });
  throw new KvError('UNAVAILABLE', `LevelDB's files kept changing during ${captureAttemptsMax} capture attempts`);
}

/** Replaces a hard link to a file LevelDB appends to with a copy of its first `bytes` bytes (fsynced). */
function keepPrefix(path: string, bytes: number): void {
  const part = `${path}.part`;
  copyFileSync(path, part);
  if (statSync(part).size < bytes) {
    rmSync(part, { force: true });
    throw new KvError('BACKUP_FAILED', `${path} is shorter than the ${bytes} bytes captured: LevelDB rewrote a file it only appends to`);
  }
  truncateSync(part, bytes);
  fsyncPath(part);
  renameSync(part, path);
}

/**
 * Checksums and fsyncs a captured snapshot and writes its manifest. `tableSums` remembers tables' checksums
 * between backups (a table's content never changes), so an incremental backup hashes only new tables.
 */
export async function seal(
  snapshotDir: string,
  { files: captured, stale }: Pick<Capture, 'files' | 'stale'>,
  identity: Omit<SnapshotManifest, 'format' | 'formatVersion' | 'files'>,
  tableSums: Map<string, string>,
  pool: HashPool,
): Promise<SnapshotManifest> {
  for (const path of stale) rmSync(join(snapshotDir, path), { force: true });
  const listed = new Set<string>();
  const files = await Promise.all(
    captured.map(async (file): Promise<SnapshotFile> => {
      const path = join(snapshotDir, file.path);
      if (file.kind === 'prefix') keepPrefix(path, file.bytes);
      else if (file.kind === 'copy') fsyncPath(path); // tables were synced by LevelDB when it wrote them
      const bytes = statSync(path).size;
      const table = file.kind === 'table';
      const cacheKey = `${file.path}:${bytes}`;
      if (table) listed.add(cacheKey);
      const sha256 = (table && tableSums.get(cacheKey)) || (await pool.hash(path));
      if (table) tableSums.set(cacheKey, sha256);
      return { path: file.path, bytes, sha256 };
    }),
  );
  // Forget tables that are gone, so the cache stays the size of the database.
  for (const key of tableSums.keys()) if (!listed.has(key)) tableSums.delete(key);
  fsyncPath(levelDir(snapshotDir));
  const manifest = newManifest({ ...identity, files });
  writeFileDurably(join(snapshotDir, manifestFileName), JSON.stringify(manifest, null, 1));
  fsyncPath(join(snapshotDir, '..'));
  return manifest;
}

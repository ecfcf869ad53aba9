// Snapshots of the daemon's LevelDB, in three phases:
//  prepare (before the freeze): hard-link the table files the MANIFEST lists now. Tables never change once
//    written, so this is most of the capture's work done while writes still flow;
//  capture (while writes are frozen): bring the links up to date with hard-link the table files the MANIFEST lists, copy CURRENT, the MANIFEST
//    and the write-ahead logs recovery would replay. Synchronous fs calls only, so nothing queues behind reads
//    in libuv's thread pool; retried if a compaction changed the file set meanwhile.
//  seal (after the thaw): checksum every file, fsync, and write the manifest durably.
// A snapshot never opens the database it copies, and the live database is never touched.
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvError } from '../shared/errors.js';
import { sha256File } from '../shared/checksum.js';
import { fsyncPath, writeFileDurably } from '../shared/durable-file.js';
import { captureAttemptsMax } from '../shared/limits.js';
import { manifestFileName, newManifest, type SnapshotFile, type SnapshotManifest } from '../shared/snapshot-manifest.js';
import { parseManifest } from './leveldb-manifest.js';
import { levelDir } from '../shared/data-dir.js';
import { formatFile, formatFileName, formatStamp } from '../shared/data-format.js';

export interface Capture {
  /** Files in the snapshot, relative to its directory. */
  files: Array<{ path: string; bytes: number; linked: boolean }>;
  attempts: number;
  ms: number;
}

const tableName = (liveDir: string, number: number): string => {
  const base = String(number).padStart(6, '0');
  return existsSync(join(liveDir, `${base}.ldb`)) ? `${base}.ldb` : `${base}.sst`;
};

/** One try: returns undefined when the database's file set changed while it worked. */
const isTable = (name: string) => /^\d+\.(ldb|sst)$/.test(name);

/** Links the tables the MANIFEST lists into the snapshot (those already linked are kept); all else is removed. */
function linkTables(liveDir: string, outDir: string, tables: Map<number, number>): Capture['files'] | undefined {
  const wanted = new Map([...tables].map(([number, bytes]) => [tableName(liveDir, number), bytes]));
  mkdirSync(outDir, { recursive: true });
  for (const name of readdirSync(outDir)) {
    // A link made earlier for a table that is still listed is that very table: file numbers are never reused.
    if (!wanted.has(name) || !isTable(name)) unlinkSync(join(outDir, name));
  }
  const files: Capture['files'] = [];
  for (const [name, bytes] of wanted) {
    if (!existsSync(join(outDir, name))) {
      try {
        linkSync(join(liveDir, name), join(outDir, name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // compacted away meanwhile
        throw error;
      }
    }
    files.push({ path: `leveldb/${name}`, bytes, linked: true });
  }
  return files;
}

/** Before the freeze: links the tables listed now. Best effort: the capture checks and completes it. */
export function prepare(dataDir: string, snapshotDir: string): number {
  const liveDir = levelDir(dataDir);
  const manifestName = readFileSync(join(liveDir, 'CURRENT'), 'utf8').trim();
  const state = parseManifest(readFileSync(join(liveDir, manifestName)));
  return linkTables(liveDir, levelDir(snapshotDir), state.tables)?.length ?? 0;
}

function captureOnce(liveDir: string, snapshotDir: string): Capture['files'] | undefined {
  const outDir = levelDir(snapshotDir);
  const current = readFileSync(join(liveDir, 'CURRENT'), 'utf8');
  const manifestName = current.trim();
  const manifestBytes = readFileSync(join(liveDir, manifestName));
  const state = parseManifest(manifestBytes);
  const tables = linkTables(liveDir, outDir, state.tables);
  if (!tables) return undefined;
  const files: Capture['files'] = [...tables];
  writeFileSync(join(outDir, 'CURRENT'), current);
  files.push({ path: 'leveldb/CURRENT', bytes: Buffer.byteLength(current), linked: false });
  writeFileSync(join(outDir, manifestName), manifestBytes);
  files.push({ path: `leveldb/${manifestName}`, bytes: manifestBytes.length, linked: false });
  const firstLog = state.prevLogNumber > 0 ? Math.min(state.prevLogNumber, state.logNumber) : state.logNumber;
  for (const name of readdirSync(liveDir)) {
    const match = /^(\d+)\.log$/.exec(name);
    if (!match || Number(match[1]) < firstLog) continue;
    copyFileSync(join(liveDir, name), join(outDir, name));
    files.push({ path: `leveldb/${name}`, bytes: statSync(join(outDir, name)).size, linked: false });
  }
  const unchanged =
    readFileSync(join(liveDir, 'CURRENT'), 'utf8') === current &&
    statSync(join(liveDir, manifestName)).size === manifestBytes.length;
  return unchanged ? files : undefined;
}

export function capture(dataDir: string, snapshotDir: string): Capture {
  const started = performance.now();
  const liveDir = levelDir(dataDir);
  for (let attempt = 1; attempt <= captureAttemptsMax; attempt++) {
    const files = captureOnce(liveDir, snapshotDir);
    if (!files) continue;
    // The snapshot is a data dir of its daemon's format: a kv that cannot read it refuses its copies untouched.
    const stamp = formatStamp('daemon');
    writeFileSync(formatFile(snapshotDir), stamp);
    files.push({ path: formatFileName, bytes: Buffer.byteLength(stamp), linked: false });
    return { files, attempts: attempt, ms: performance.now() - started };
  }
  rmSync(snapshotDir, { recursive: true, force: true });
  throw new KvError('UNAVAILABLE', `LevelDB's files kept changing during ${captureAttemptsMax} capture attempts`);
}

/**
 * Checksums and fsyncs a captured snapshot and writes its manifest. `tableSums` remembers tables' checksums
 * between backups (a table's content never changes), so an incremental backup hashes only new tables.
 */
export async function seal(
  snapshotDir: string,
  captured: Capture['files'],
  identity: Omit<SnapshotManifest, 'format' | 'formatVersion' | 'files'>,
  tableSums: Map<string, string>,
): Promise<SnapshotManifest> {
  const files: SnapshotFile[] = [];
  const listed = new Set<string>();
  for (const file of captured) {
    const path = join(snapshotDir, file.path);
    const bytes = statSync(path).size;
    if (!file.linked) fsyncPath(path); // linked tables were synced by LevelDB when it wrote them
    const cacheKey = `${file.path}:${bytes}`;
    const sha256 = (file.linked && tableSums.get(cacheKey)) || (await sha256File(path));
    if (file.linked) {
      tableSums.set(cacheKey, sha256);
      listed.add(cacheKey);
    }
    files.push({ path: file.path, bytes, sha256 });
  }
  // Forget tables that are gone, so the cache stays the size of the database.
  for (const key of tableSums.keys()) if (!listed.has(key)) tableSums.delete(key);
  fsyncPath(levelDir(snapshotDir));
  const manifest = newManifest({ ...identity, files });
  writeFileDurably(join(snapshotDir, manifestFileName), JSON.stringify(manifest, null, 1));
  fsyncPath(join(snapshotDir, '..'));
  return manifest;
}

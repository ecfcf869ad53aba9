// Checking a copied snapshot against its manifest, and opening a copy of it as a LevelDB. Used by the backup
// manager after rsync, and by verify-backup on a stored backup. A snapshot or backup is never opened in place:
// opening a LevelDB rewrites its directory, so the database opened here is a scratch copy (hard links to the
// immutable tables, copies of everything else).
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { HashPool } from '../../shared/hash-pool.js';
import { fsyncPathAsync } from '../../shared/durable-file.js';
import { levelDir } from '../../shared/data-dir.js';
import { dataKeysFrom, dataKeysTo, identityKey } from '../../shared/key-layout.js';
import { KvError } from '../../shared/errors.js';
import { openLevel } from '../../shared/level.js';
import { unpack } from '../../shared/codec.js';
import { manifestFileName, readManifest, type SnapshotManifest } from '../../shared/snapshot-manifest.js';

export interface CheckedCopy {
  manifest: SnapshotManifest;
  files: number;
  bytes: number;
  /** Files whose checksum was taken from the previous backup because they are the same inode. */
  trustedFiles: number;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(dir, path).split(sep).join('/'));
    }
  };
  walk(dir);
  return out;
}

/**
 * Checks every file of a copied snapshot against its manifest: present, same size, same SHA-256, and nothing
 * else there. A file that is the same inode as the previous (verified) backup's copy with the same checksum in
 * its manifest is not hashed again: a hard link cannot differ from what it links to. Hashes on `pool`'s threads
 * (a pool of its own if none is given); with `fsync`, each hashed file is also made durable (a fresh copy).
 */
export async function checkCopy(
  dir: string,
  previous?: { dir: string; manifest: SnapshotManifest },
  options: { pool?: HashPool; fsync?: boolean } = {},
): Promise<CheckedCopy> {
  const manifest = readManifest(dir);
  const problems: string[] = [];
  const listed = new Set(manifest.files.map((f) => f.path));
  for (const extra of filesUnder(dir)) {
    if (extra !== manifestFileName && !listed.has(extra)) problems.push(`${extra} is not in the manifest`);
  }
  const previousSums = new Map(previous?.manifest.files.map((f) => [f.path, f.sha256]));
  let trustedFiles = 0;
  const toHash: typeof manifest.files = [];
  for (const file of manifest.files) {
    const path = join(dir, file.path);
    if (!existsSync(path)) {
      problems.push(`${file.path} is missing`);
      continue;
    }
    const stat = statSync(path);
    if (stat.size !== file.bytes) {
      problems.push(`${file.path} is ${stat.size} bytes, the manifest says ${file.bytes}`);
      continue;
    }
    if (previous && previousSums.get(file.path) === file.sha256) {
      const before = join(previous.dir, file.path);
      if (existsSync(before) && statSync(before).ino === stat.ino) {
        trustedFiles++;
        continue;
      }
    }
    toHash.push(file);
  }
  const pool = options.pool ?? new HashPool();
  try {
    // The fsync of a file hashed waits on the disk on libuv's threads while the hash threads go on with the next.
    const read = async (file: (typeof toHash)[number]): Promise<string | undefined> => {
      const path = join(dir, file.path);
      let sha256: string;
      try {
        sha256 = await pool.hash(path);
      } catch (error) {
        return `${file.path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
      }
      if (options.fsync) {
        await fsyncPathAsync(path).catch((error: NodeJS.ErrnoException) => {
          throw new KvError('BACKUP_FAILED', `cannot fsync ${path}: ${error.code ?? error.message}`);
        });
      }
      return sha256 === file.sha256 ? undefined : `${file.path} does not match its checksum`;
    };
    for (const problem of await Promise.all(toHash.map(read))) if (problem) problems.push(problem);
  } finally {
    if (!options.pool) await pool.close();
  }
  if (problems.length > 0) {
    throw new KvError('DATA_DIR_INVALID', `${dir}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
  }
  return { manifest, files: manifest.files.length, bytes: manifest.files.reduce((s, f) => s + f.bytes, 0), trustedFiles };
}

/** Opens a scratch copy of a snapshot's LevelDB, counts its stored values and reads its identity. */
export async function openAndCount(dir: string, scratchRoot: string): Promise<{ entries: number; serverId: string; clusterId: string }> {
  const scratch = mkdtempSync(join(scratchRoot, '.kv-verify-'));
  try {
    const from = levelDir(dir);
    const to = levelDir(scratch);
    mkdirSync(to);
    for (const name of readdirSync(from)) {
      if (/\.(ldb|sst)$/.test(name)) {
        try {
          linkSync(join(from, name), join(to, name));
          continue;
        } catch {
          // another filesystem: fall through to a copy
        }
      }
      copyFileSync(join(from, name), join(to, name));
    }
    const db = await openLevel(to, { createIfMissing: false });
    try {
      const identity = await db.get(identityKey);
      if (identity === undefined) throw new KvError('DATA_DIR_INVALID', `${dir} holds no daemon identity`);
      let entries = 0;
      const keys = db.keys({ gte: dataKeysFrom, lt: dataKeysTo });
      try {
        for (let batch = await keys.nextv(10_000); batch.length > 0; batch = await keys.nextv(10_000)) entries += batch.length;
      } finally {
        await keys.close();
      }
      const { serverId, clusterId } = unpack(identity) as { serverId: string; clusterId: string };
      return { entries, serverId, clusterId };
    } finally {
      await db.close();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

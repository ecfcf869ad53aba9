// Files written for keeps (manifests, coordinator.bin, LATEST, backup.json): write NAME.part, fsync it, rename it
// over NAME, fsync the directory. A crash leaves the old file or the new one, never a torn one.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KvError } from './errors.js';
import { makeDir } from './make-dir.js';

/**
 * Fails with one clear line unless `dir` exists (or can be made) and a file can really be written in it:
 * permission bits alone say nothing for root, and a read-only filesystem only shows on a write.
 */
export function checkWritableDir(dir: string, what: string): void {
  makeDir(dir, what);
  try {
    const probe = join(dir, `.kv-write-probe-${process.pid}`);
    writeFileSync(probe, 'probe');
    unlinkSync(probe);
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new KvError('BAD_REQUEST', `cannot write to ${what} ${dir}: ${why} (it is not a writable directory)`);
  }
}

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncPath on libuv's threads: many at once wait for the disk together, while the event loop goes on. */
export async function fsyncPathAsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function writeFileDurably(path: string, data: string | Uint8Array): void {
  const part = `${path}.part`;
  const fd = openSync(part, 'w');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(part, path);
  fsyncPath(dirname(path));
}

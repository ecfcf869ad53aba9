// One hashing task of a HashPool (hash-pool.ts), run on its threads: SHA-256 of a file read in chunks.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { hashChunkBytes } from './limits.js';
import type { HashAnswer } from './hash-pool.js';

const chunk = Buffer.allocUnsafe(hashChunkBytes);

function hashFile(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const hash = createHash('sha256');
    for (let n = readSync(fd, chunk, 0, chunk.length, null); n > 0; n = readSync(fd, chunk, 0, chunk.length, null)) {
      hash.update(chunk.subarray(0, n));
    }
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

export default function hash(path: string): HashAnswer {
  try {
    return { sha256: hashFile(path) };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { error: { message: e.message, ...(e.code ? { code: e.code } : {}) } };
  }
}

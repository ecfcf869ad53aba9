// One hashing thread of a HashPool (hash-pool.ts): SHA-256 of a file read in chunks.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { hashChunkBytes } from './limits.js';
import type { HashJob, HashAnswer } from './hash-pool.js';

const chunk = Buffer.allocUnsafe(hashChunkBytes);

function hashFile(job: HashJob): string {
  const fd = openSync(job.path, 'r');
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

parentPort!.on('message', (job: HashJob) => {
  let answer: HashAnswer;
  try {
    answer = { id: job.id, sha256: hashFile(job) };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    answer = { id: job.id, error: { message: e.message, ...(e.code ? { code: e.code } : {}) } };
  }
  parentPort!.postMessage(answer);
});

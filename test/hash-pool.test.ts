// shared/hash-pool.ts: the same SHA-256 as node:crypto over files of many sizes, on several threads at once; a
// missing file fails its own hash with its code and not the others; a closed pool fails what is still queued.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HashPool } from '../shared/hash-pool.js';
import { hashChunkBytes } from '../shared/limits.js';
import { tempDir } from './helpers/cluster.js';

t.test('hashes match node:crypto, whatever the size and however many at once', async (t) => {
  const dir = tempDir(t);
  const sizes = [0, 1, 4095, hashChunkBytes - 1, hashChunkBytes, hashChunkBytes + 1, 3 * hashChunkBytes + 17];
  const files = sizes.flatMap((bytes, i) => [0, 1, 2].map((copy) => {
    const path = join(dir, `f${i}-${copy}`);
    const data = randomBytes(bytes);
    writeFileSync(path, data);
    return { path, sha256: createHash('sha256').update(data).digest('hex') };
  }));
  const pool = new HashPool(3);
  t.teardown(() => pool.close());
  const sums = await Promise.all(files.map((f) => pool.hash(f.path)));
  t.same(sums, files.map((f) => f.sha256), `${files.length} files`);
});

t.test('a missing file fails alone, with its code', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'here'), 'x');
  const pool = new HashPool(2);
  t.teardown(() => pool.close());
  const [missing, here] = await Promise.allSettled([pool.hash(join(dir, 'gone')), pool.hash(join(dir, 'here'))]);
  t.equal(missing.status, 'rejected');
  t.equal((missing as PromiseRejectedResult).reason.code, 'ENOENT');
  t.same(here, { status: 'fulfilled', value: createHash('sha256').update('x').digest('hex') });
});

t.test('close fails the hashes not done', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'big');
  writeFileSync(path, randomBytes(4 * hashChunkBytes));
  const pool = new HashPool(1);
  const settled = Promise.allSettled(Array.from({ length: 20 }, () => pool.hash(path)));
  await pool.close();
  const results = await settled;
  t.ok(results.some((r) => r.status === 'rejected'), 'some were still queued and fail');
});

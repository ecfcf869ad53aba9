// Reading what each replica stores, straight from a stopped daemon's LevelDB.
import { levelDir } from '../../shared/data-dir.js';
import { openLevel } from '../../shared/level.js';
import { dataKey } from '../../shared/key-layout.js';

/** Every key and value of one partition in a (stopped) daemon's data dir, hex-encoded. */
export async function partitionContents(dataDir: string, spaceId: number, partition: number): Promise<Map<string, string>> {
  const db = await openLevel(levelDir(dataDir), { createIfMissing: false });
  try {
    const gte = dataKey(spaceId, partition, '');
    const lt = dataKey(spaceId, partition + 1, '');
    const out = new Map<string, string>();
    for await (const [key, value] of db.iterator({ gte, lt })) out.set(key.toString('hex'), value.toString('hex'));
    return out;
  } finally {
    await db.close();
  }
}

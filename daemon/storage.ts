// The daemon's LevelDB, with the key layout of shared/data-dir.ts: one space's partition is one contiguous range
// (counted, scanned, or dropped as a unit).
import { mkdirSync } from 'node:fs';
import { pack, unpack } from '../shared/codec.js';
import { levelError, openLevel, type Level, type LevelOptions } from '../shared/level.js';
import type { Attrs } from '../shared/protocol.js';
import { dataTag, identityKey, levelDir } from '../shared/data-dir.js';

export interface Identity {
  serverId: string;
  clusterId: string;
}


export const dataKey = (spaceId: number, partition: number, key: string): Buffer => {
  const bytes = Buffer.allocUnsafe(7 + Buffer.byteLength(key));
  bytes[0] = dataTag;
  bytes.writeUInt32BE(spaceId, 1);
  bytes.writeUInt16BE(partition, 5);
  bytes.write(key, 7, 'utf8');
  return bytes;
};

const prefix = (spaceId: number, partition?: number): Buffer => {
  const bytes = Buffer.alloc(partition === undefined ? 5 : 7);
  bytes[0] = dataTag;
  bytes.writeUInt32BE(spaceId, 1);
  if (partition !== undefined) bytes.writeUInt16BE(partition, 5);
  return bytes;
};

/** The range [gte, lt) of one partition (or a whole space). */
const range = (spaceId: number, partition?: number) => {
  const gte = prefix(spaceId, partition);
  // partitionsMax keeps partition + 1 within the u16.
  const lt = partition === undefined ? prefix(spaceId + 1) : prefix(spaceId, partition + 1);
  return { gte, lt };
};

type Operation = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** Writes committed together in one LevelDB batch; they succeed or fail together. */
class CommitGroup {
  readonly operations: Operation[] = [];
  resolve!: () => void;
  reject!: (error: Error) => void;
  readonly done = new Promise<void>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });
}

export class Storage {
  private nextGroup: CommitGroup | undefined;
  /** The loop committing groups, while there are any. */
  private committing: Promise<void> | undefined;

  private constructor(
    readonly db: Level,
    readonly location: string,
  ) {}

  static async open(dataDir: string, options: LevelOptions = {}): Promise<Storage> {
    mkdirSync(dataDir, { recursive: true });
    const location = levelDir(dataDir);
    return new Storage(await openLevel(location, options), location);
  }

  async identity(): Promise<Identity | undefined> {
    const bytes = await this.db.get(identityKey);
    return bytes === undefined ? undefined : (unpack(bytes) as Identity);
  }

  saveIdentity(identity: Identity): Promise<void> {
    return this.db.put(identityKey, pack(identity), { sync: true });
  }

  /**
   * Reads on the event loop. LevelDB answers from its memtable, its block cache or the OS page cache in a few µs;
   * an async get costs a thread-pool round trip, about 12 µs of CPU on our 2-core machines, four times the read
   * itself (bench/RESULTS.md, "Where the time went"). A read that must go to a cold disk blocks the loop for
   * that long: the price of not paying the round trip on every other read.
   */
  get(key: Buffer): Attrs | undefined {
    let bytes: Buffer | undefined;
    try {
      bytes = this.db.getSync(key);
    } catch (error) {
      throw levelError(error, this.location);
    }
    return bytes === undefined ? undefined : (unpack(bytes) as Attrs);
  }

  /**
   * Applies changes atomically. Changes written while a LevelDB batch is out are committed together in the next
   * one (group commit): under load one batch serves many partitions' writes, at the cost of one thread-pool round
   * trip instead of one each. `encoded` holds each value's packed bytes, computed once by the caller.
   */
  write(changes: Array<{ key: Buffer; encoded: Buffer | undefined }>): Promise<void> {
    const group = (this.nextGroup ??= new CommitGroup());
    for (const c of changes) {
      group.operations.push(c.encoded === undefined ? { type: 'del', key: c.key } : { type: 'put', key: c.key, value: c.encoded });
    }
    // Writes made in the same event-loop turn join this group.
    this.committing ??= new Promise((resolve) => setImmediate(resolve)).then(() => this.commitGroups());
    return group.done;
  }

  /** Commits one group at a time until no writes are waiting. */
  private async commitGroups(): Promise<void> {
    while (this.nextGroup) {
      const group = this.nextGroup;
      this.nextGroup = undefined;
      try {
        // A chained batch hands each operation to LevelDB as it is added: half the event-loop time of an array
        // batch, which abstract-level copies and checks operation by operation first.
        const batch = this.db.batch();
        try {
          for (const op of group.operations) {
            if (op.type === 'put') batch.put(op.key, op.value);
            else batch.del(op.key);
          }
        } catch (error) {
          await batch.close();
          throw error;
        }
        await batch.write();
        group.resolve();
      } catch (error) {
        group.reject(levelError(error, this.location));
      }
    }
    this.committing = undefined;
  }

  async count(spaceId: number, partition: number): Promise<number> {
    let count = 0;
    const iterator = this.db.keys(range(spaceId, partition));
    try {
      for (;;) {
        const keys = await iterator.nextv(1000);
        if (keys.length === 0) return count;
        count += keys.length;
      }
    } finally {
      await iterator.close();
    }
  }

  /** One page of a partition, in key order, starting after `after`. */
  async scan(
    spaceId: number,
    partition: number,
    after: string | null,
    entriesMax: number,
    bytesMax: number,
  ): Promise<{ entries: Array<[string, Attrs]>; next: string | null }> {
    const bounds = range(spaceId, partition);
    const options = after === null ? bounds : { gt: dataKey(spaceId, partition, after), lt: bounds.lt };
    const iterator = this.db.iterator({ ...options, limit: entriesMax });
    const entries: Array<[string, Attrs]> = [];
    let bytes = 0;
    try {
      for (;;) {
        const batch = await iterator.nextv(Math.min(entriesMax - entries.length, 1000));
        for (const [key, value] of batch) {
          entries.push([key.toString('utf8', 7), unpack(value) as Attrs]);
          bytes += key.length + value.length;
        }
        if (batch.length === 0 || entries.length >= entriesMax || bytes >= bytesMax) break;
      }
    } finally {
      await iterator.close();
    }
    const full = entries.length >= entriesMax || bytes >= bytesMax;
    return { entries, next: full ? entries[entries.length - 1]![0] : null };
  }

  /** One page of a partition as stored (raw keys and values), starting after the raw key `after`. */
  async scanRaw(
    spaceId: number,
    partition: number,
    after: Buffer | null,
    entriesMax: number,
    bytesMax: number,
  ): Promise<{ entries: Array<[Buffer, Buffer]>; next: Buffer | null }> {
    const bounds = range(spaceId, partition);
    const iterator = this.db.iterator(after === null ? bounds : { gt: after, lt: bounds.lt });
    const entries: Array<[Buffer, Buffer]> = [];
    let bytes = 0;
    try {
      while (entries.length < entriesMax && bytes < bytesMax) {
        const batch = (await iterator.nextv(Math.min(100, entriesMax - entries.length))) as Array<[Buffer, Buffer]>;
        if (batch.length === 0) return { entries, next: null };
        for (const entry of batch) {
          entries.push(entry);
          bytes += entry[0].length + entry[1].length;
        }
      }
    } catch (error) {
      throw levelError(error, this.location);
    } finally {
      await iterator.close();
    }
    return { entries, next: entries[entries.length - 1]![0] };
  }

  /** Deletes a partition's data (before receiving it afresh, or after it moved away). */
  clearPartition(spaceId: number, partition: number): Promise<void> {
    return this.db.clear(range(spaceId, partition));
  }

  /** Deletes everything stored for a space (after the space was removed). */
  dropSpace(spaceId: number): Promise<void> {
    return this.db.clear(range(spaceId));
  }

  /** The ids of every space with data here. */
  async spaceIds(): Promise<number[]> {
    const ids: number[] = [];
    let from = prefix(0);
    for (;;) {
      const [key] = await this.db.keys({ gte: from, lt: Buffer.from([dataTag + 1]), limit: 1 }).all();
      if (!key) return ids;
      const id = key.readUInt32BE(1);
      ids.push(id);
      from = prefix(id + 1);
    }
  }

  async close(): Promise<void> {
    await this.committing;
    return this.db.close();
  }
}

// The daemon's LevelDB, with the key layout of shared/key-layout.ts: one space's partition is two contiguous ranges,
// its values and its completion records (moved, dropped and captured as a unit; counted and scanned: values only).
import { performance } from 'node:perf_hooks';
import { Packed, pack, unpack } from '../shared/codec.js';
import { levelError, openLevel, type Level, type LevelOptions } from '../shared/level.js';
import type { Attrs } from '../shared/protocol.js';
import { levelDir } from '../shared/data-dir.js';
import { checkDataFormat } from '../shared/data-format.js';
import { makeDir } from '../shared/make-dir.js';
import { decodeStored, storedAttrsBytes } from './stored-value.js';
import { dataKey, dataRange, identityKey, partitionRanges, recordRange, recordTag, dataTag, userKeyOf, type KeyRange } from '../shared/key-layout.js';

export interface Identity {
  serverId: string;
  clusterId: string;
  /** The cluster incarnation this data last registered with (coordinator/cluster.ts, `checkDataOf`); absent in data dirs from before. */
  incarnation?: string;
}

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
  /** Told the size of every group committed, whether it was synced, and how long its write took (metrics). */
  onCommit: ((operations: number, synced: boolean, seconds: number) => void) | undefined;
  /** The loop committing groups, while there are any. */
  private committing: Promise<void> | undefined;

  private constructor(
    readonly db: Level,
    readonly location: string,
    /**
     * Durable mode: every group is written with LevelDB's sync (its log appended, then fdatasync) before any of
     * its writes is answered, so an acknowledged write survives the machine losing power, not only the process
     * dying. Group commit is what keeps this affordable: the writes that arrive while one fsync is out all go into
     * the next group, so a loaded daemon pays one fsync for many writes, not one each.
     */
    readonly durable: boolean,
  ) {}

  static async open(dataDir: string, options: LevelOptions = {}, durable = false): Promise<Storage> {
    makeDir(dataDir, 'the data dir');
    checkDataFormat(dataDir, 'daemon');
    const location = levelDir(dataDir);
    return new Storage(await openLevel(location, options), location, durable);
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
    return bytes === undefined ? undefined : decodeStored(bytes).attrs;
  }

  /** A key's attributes as their stored msgpack bytes, for a read to answer as they are; read like `get`. */
  getPacked(key: Buffer): Packed | undefined {
    const bytes = this.getRaw(key);
    return bytes === undefined ? undefined : new Packed(storedAttrsBytes(bytes));
  }

  /** A key's stored bytes, read on the event loop like `get`. */
  getRaw(key: Buffer): Buffer | undefined {
    try {
      return this.db.getSync(key);
    } catch (error) {
      throw levelError(error, this.location);
    }
  }

  /**
   * Applies changes atomically. Changes written while a LevelDB batch is out are committed together in the next
   * one (group commit): under load one batch serves many partitions' writes, at the cost of one thread-pool round
   * trip instead of one each. Each change is a key and its packed value (computed once by the caller), or
   * undefined to delete it.
   */
  write(changes: ReadonlyArray<readonly [key: Buffer, encoded: Buffer | undefined]>): Promise<void> {
    const group = (this.nextGroup ??= new CommitGroup());
    for (const [key, encoded] of changes) {
      group.operations.push(encoded === undefined ? { type: 'del', key } : { type: 'put', key, value: encoded });
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
        const started = this.onCommit && performance.now();
        await batch.write({ sync: this.durable });
        if (this.onCommit) this.onCommit(group.operations.length, this.durable, (performance.now() - started!) / 1000);
        group.resolve();
      } catch (error) {
        group.reject(levelError(error, this.location));
      }
    }
    this.committing = undefined;
  }

  async count(spaceId: number, partition: number): Promise<number> {
    let count = 0;
    const iterator = this.db.keys(dataRange(spaceId, partition));
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
    const bounds = dataRange(spaceId, partition);
    const options = after === null ? bounds : { gt: dataKey(spaceId, partition, after), lt: bounds.lt };
    const iterator = this.db.iterator({ ...options, limit: entriesMax });
    const entries: Array<[string, Attrs]> = [];
    let bytes = 0;
    try {
      for (;;) {
        const batch = await iterator.nextv(Math.min(entriesMax - entries.length, 1000));
        for (const [key, value] of batch) {
          entries.push([userKeyOf(key), decodeStored(value).attrs]);
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

  /**
   * One page of a partition as stored (raw keys and values: its values, then its completion records), starting
   * after the raw key `after`.
   */
  async scanRaw(
    spaceId: number,
    partition: number,
    after: Buffer | null,
    entriesMax: number,
    bytesMax: number,
  ): Promise<{ entries: Array<[Buffer, Buffer]>; next: Buffer | null }> {
    const entries: Array<[Buffer, Buffer]> = [];
    let bytes = 0;
    for (const range of partitionRanges(spaceId, partition)) {
      if (after !== null && Buffer.compare(after, range.lt) >= 0) continue;
      const from = after !== null && Buffer.compare(after, range.gte) >= 0 ? { gt: after, lt: range.lt } : range;
      const iterator = this.db.iterator(from);
      try {
        while (entries.length < entriesMax && bytes < bytesMax) {
          const batch = (await iterator.nextv(Math.min(100, entriesMax - entries.length))) as Array<[Buffer, Buffer]>;
          if (batch.length === 0) break;
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
      if (entries.length >= entriesMax || bytes >= bytesMax) return { entries, next: entries[entries.length - 1]![0] };
    }
    return { entries, next: null };
  }

  /** Every completion record of a partition, raw. */
  async records(spaceId: number, partition: number): Promise<Array<[Buffer, Buffer]>> {
    try {
      return (await this.db.iterator(recordRange(spaceId, partition)).all()) as Array<[Buffer, Buffer]>;
    } catch (error) {
      throw levelError(error, this.location);
    }
  }

  /** Deletes a partition's data (before receiving it afresh, or after it moved away). */
  async clearPartition(spaceId: number, partition: number): Promise<void> {
    for (const range of partitionRanges(spaceId, partition)) await this.db.clear(range);
  }

  /** Deletes everything stored for a space (after the space was removed). */
  async dropSpace(spaceId: number): Promise<void> {
    for (const range of partitionRanges(spaceId)) await this.db.clear(range);
  }

  /** The ids of every space with values or completion records here. */
  async spaceIds(): Promise<number[]> {
    const ids = new Set<number>();
    for (const tag of [dataTag, recordTag]) {
      const all: KeyRange = { gte: Buffer.from([tag]), lt: Buffer.from([tag + 1]) };
      let from = all.gte;
      for (;;) {
        const [key] = await this.db.keys({ gte: from, lt: all.lt, limit: 1 }).all();
        if (!key) break;
        const id = key.readUInt32BE(1);
        ids.add(id);
        from = (tag === dataTag ? dataRange(id + 1) : recordRange(id + 1)).gte;
      }
    }
    return [...ids].sort((a, b) => a - b);
  }

  async close(): Promise<void> {
    await this.committing;
    return this.db.close();
  }
}

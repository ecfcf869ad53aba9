// Every write on a daemon goes through a queue, one queue per partition. A queue applies its writes in arrival
// order, in batches: one batch reads the current values it needs, computes each write's result in
// order (later writes in the batch see earlier ones), commits them atomically (Storage puts the batches that
// partitions commit at the same moment into one LevelDB write), and waits for `afterCommit`
// (replication down the partition's chain) before answering. While a batch is out, new writes wait for the
// next one. One batch at a time per partition makes every key's writes linearizable, including cond_put and
// atomic_add; separate partitions never wait for each other, so chains that cross daemons cannot deadlock.
//
// A backup's freeze holds the queues: client writes submitted after `hold()` wait (in order, bounded) while
// those already admitted are committed and replicated; `hold()` resolves when they are, which is the daemon's
// quiesced point. Replicated writes from a predecessor are never held: they belong to writes admitted upstream
// before the freeze. `release()` admits the held writes in arrival order. Nothing held is dropped or applied twice.
import { KvError, asKvError, badRequest } from '../shared/errors.js';
import { pack } from '../shared/codec.js';
import { heldWritesMax, writeBatchOpsMax } from '../shared/limits.js';
import type { Attrs } from '../shared/protocol.js';
import type { Storage } from './storage.js';

/** A write, reduced to what it does: the new value from the current one (undefined deletes the key). */
export interface Write {
  key: Buffer;
  apply: (current: Attrs | undefined) => { value: Attrs | undefined; result: unknown };
  origin: Origin;
}

/**
 * Where a write reached this daemon from: a client (at the head; the only writes a freeze holds), the predecessor
 * in the partition's chain, or the tail, forwarding to this daemon as the partition's joining member.
 */
export type Origin = 'client' | 'chain' | 'joining';

export type Committed = Array<{ key: Buffer; value: Attrs | undefined }>;
/**
 * Runs after a batch is committed locally and before its writes are answered (replication waits here).
 * `asJoining`: every write of the batch reached this daemon as the partition's joining member.
 */
export type AfterCommit = (partition: string, changes: Committed, asJoining: boolean) => Promise<void>;

interface Queued extends Write {
  resolve: (result: unknown) => void;
  reject: (error: KvError) => void;
}

/** Work that must see the partition still: it runs alone, between batches, in arrival order with the writes. */
interface Task {
  task: () => Promise<unknown>;
  resolve: (result: unknown) => void;
  reject: (error: KvError) => void;
}

type Item = Queued | Task;
const isTask = (item: Item): item is Task => 'task' in item;

class PartitionQueue {
  private queue: Item[] = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly partition: string,
    private readonly storage: Storage,
    private readonly valueBytesMax: number,
    private readonly afterCommit: AfterCommit,
  ) {}

  admit(item: Item): void {
    this.queue.push(item);
    if (!this.running) void this.run();
  }

  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    this.running = true;
    // The writes of one incoming message are all submitted before its microtasks run: they join the first batch.
    // (Waiting for the next event-loop turn instead costs a turn of latency, and Storage groups the batches of a
    // turn into one LevelDB write anyway.)
    await Promise.resolve();
    while (this.queue.length > 0) {
      const first = this.queue[0]!;
      if (isTask(first)) {
        this.queue.shift();
        await first.task().then(first.resolve, (error) => first.reject(asKvError(error)));
        continue;
      }
      const end = this.queue.findIndex((item, i) => i >= writeBatchOpsMax || isTask(item));
      const batch = this.queue.splice(0, end < 0 ? writeBatchOpsMax : end) as Queued[];
      await this.commit(batch);
    }
    this.running = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async commit(batch: Queued[]): Promise<void> {
    const ids = batch.map((w) => w.key.toString('latin1'));
    const values = new Map<string, Attrs | undefined>();
    try {
      batch.forEach((write, i) => {
        if (!values.has(ids[i]!)) values.set(ids[i]!, this.storage.get(write.key));
      });
    } catch (error) {
      for (const write of batch) write.reject(asKvError(error));
      return;
    }
    const changed = new Map<string, { key: Buffer; value: Attrs | undefined; encoded: Buffer | undefined }>();
    const outcomes: Array<{ ok: true; result: unknown } | { ok: false; error: KvError }> = [];
    batch.forEach((write, i) => {
      const id = ids[i]!;
      try {
        const { value, result } = write.apply(values.get(id));
        const encoded = value === undefined ? undefined : pack(value);
        if (encoded && encoded.length > this.valueBytesMax) {
          throw badRequest(`the value would be ${encoded.length} bytes; the limit is ${this.valueBytesMax}`);
        }
        values.set(id, value);
        changed.set(id, { key: write.key, value, encoded });
        outcomes.push({ ok: true, result });
      } catch (error) {
        outcomes.push({ ok: false, error: asKvError(error) });
      }
    });
    try {
      if (changed.size > 0) {
        await this.storage.write([...changed.values()]);
        const asJoining = batch.every((w) => w.origin === 'joining');
        await this.afterCommit(this.partition, [...changed.values()].map(({ key, value }) => ({ key, value })), asJoining);
      }
    } catch (error) {
      for (const write of batch) write.reject(asKvError(error));
      return;
    }
    batch.forEach((write, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.result);
      else write.reject(outcome.error);
    });
  }
}

export class WriteQueues {
  private readonly queues = new Map<string, PartitionQueue>();
  private held: Queued[] = [];
  private holding = false;

  constructor(
    private readonly storage: Storage,
    private readonly valueBytesMax: number,
    private readonly afterCommit: AfterCommit = async () => {},
  ) {}

  /** `partition` names one partition of one space; writes to different partitions never wait for each other. */
  submit(partition: string, write: Write): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const queued: Queued & { partition: string } = { key: write.key, apply: write.apply, origin: write.origin, partition, resolve, reject };
      if (!this.holding || write.origin !== 'client') this.queueOf(partition).admit(queued);
      else if (this.held.length < heldWritesMax) this.held.push(queued);
      else reject(new KvError('UNAVAILABLE', `a backup freeze is holding ${heldWritesMax} writes already`));
    });
  }

  /** Runs `task` in the partition's queue: after every write admitted before it, before any admitted after. */
  exclusive<T>(partition: string, task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queueOf(partition).admit({ task, resolve: resolve as (result: unknown) => void, reject });
    });
  }

  /** Holds client writes submitted from now on; resolves once every write admitted before is committed and replicated. */
  hold(): Promise<void> {
    this.holding = true;
    return this.idle();
  }

  /** Admits the held writes, in order. Returns how many there were. */
  release(): number {
    this.holding = false;
    const held = this.held as Array<Queued & { partition: string }>;
    this.held = [];
    for (const write of held) this.queueOf(write.partition).admit(write);
    return held.length;
  }

  /** Resolves when every write admitted so far has been committed (and replicated) or failed. */
  async idle(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.idle()));
  }

  private queueOf(partition: string): PartitionQueue {
    let queue = this.queues.get(partition);
    if (!queue) {
      queue = new PartitionQueue(partition, this.storage, this.valueBytesMax, this.afterCommit);
      this.queues.set(partition, queue);
    }
    return queue;
  }
}

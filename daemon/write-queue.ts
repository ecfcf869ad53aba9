// Every write on a daemon goes through this queue. Writes are applied in arrival order, in batches: one batch
// reads the current values it needs in one getMany, computes each write's result in order (later writes in the
// batch see earlier ones), and commits with one LevelDB batch. While a batch commits, new writes wait for the
// next one. One batch at a time makes every key's writes linearizable, including cond_put and atomic_add.
//
// A backup's freeze holds the queue: writes submitted after `hold()` wait (in order, bounded) and those already
// admitted are committed; `hold()` resolves when they are, which is the daemon's quiesced point. `release()`
// admits the held writes in their arrival order. Nothing held is dropped or applied twice.
import { KvError, asKvError, badRequest } from '../shared/errors.js';
import { pack } from '../shared/codec.js';
import { heldWritesMax, writeBatchOpsMax } from '../shared/limits.js';
import type { Attrs } from '../shared/protocol.js';
import type { Storage } from './storage.js';

/** A write, reduced to what it does: the new value from the current one (undefined deletes the key). */
export interface Write {
  key: Buffer;
  apply: (current: Attrs | undefined) => { value: Attrs | undefined; result: unknown };
}

interface Queued extends Write {
  resolve: (result: unknown) => void;
  reject: (error: KvError) => void;
}

export class WriteQueue {
  private queue: Queued[] = [];
  private held: Queued[] = [];
  private holding = false;
  private running = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly storage: Storage,
    private readonly valueBytesMax: number,
  ) {}

  submit(write: Write): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const queued = { ...write, resolve, reject };
      if (!this.holding) {
        this.queue.push(queued);
        if (!this.running) void this.run();
      } else if (this.held.length < heldWritesMax) this.held.push(queued);
      else reject(new KvError('UNAVAILABLE', `a backup freeze is holding ${heldWritesMax} writes already`));
    });
  }

  /** Holds writes submitted from now on; resolves once every write admitted before is committed. */
  hold(): Promise<void> {
    this.holding = true;
    return this.idle();
  }

  /** Admits the held writes, in order. Returns how many there were. */
  release(): number {
    this.holding = false;
    const held = this.held;
    this.held = [];
    this.queue.push(...held);
    if (held.length > 0 && !this.running) void this.run();
    return held.length;
  }

  /** Resolves when every write submitted so far has been committed or failed. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    this.running = true;
    // Let writes that arrive in the same event-loop turn join the first batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, writeBatchOpsMax);
      await this.commit(batch);
    }
    this.running = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async commit(batch: Queued[]): Promise<void> {
    const ids = batch.map((w) => w.key.toString('latin1'));
    const distinct = [...new Map(batch.map((w, i) => [ids[i]!, w.key])).entries()];
    let values: Map<string, Attrs | undefined>;
    try {
      const current = await this.storage.getMany(distinct.map(([, key]) => key));
      values = new Map(distinct.map(([id], i) => [id, current[i]]));
    } catch (error) {
      for (const write of batch) write.reject(asKvError(error));
      return;
    }
    const changed = new Map<string, { key: Buffer; encoded: Buffer | undefined }>();
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
        changed.set(id, { key: write.key, encoded });
        outcomes.push({ ok: true, result });
      } catch (error) {
        outcomes.push({ ok: false, error: asKvError(error) });
      }
    });
    try {
      if (changed.size > 0) await this.storage.write([...changed.values()]);
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

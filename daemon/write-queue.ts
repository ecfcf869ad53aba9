// Every write on a daemon goes through a queue, one queue per partition replica (replica.ts owns it). A queue
// applies its writes in arrival order, in batches: one batch reads the current values it needs, computes each
// write's result in order (later writes in the batch see earlier ones), commits them atomically (Storage puts the
// batches that partitions commit at the same moment into one LevelDB write), and waits for `afterCommit`
// (replication down the partition's chain) before answering. While a batch is out, new writes wait for the next
// one. One batch at a time per partition makes every key's writes linearizable, including cond_put and
// atomic_add; separate partitions never wait for each other, so chains that cross daemons cannot deadlock.
//
// Three kinds of work reach a queue: a client's write at the head (an operation, with its request id: see
// completion-records.ts), the changes a predecessor committed (raw keys and encoded values, applied as they are:
// every limit was checked at the head), and tasks that must see the partition alone (a transfer page, a drop, a
// read that must follow the writes before it). A batch holds one kind.
//
// A queue admits what it is given at once; a backup's freeze holds work before it reaches the queue (see
// replicas.ts for what is held and what is not).
import { type KvError, asKvError, badRequest } from '../shared/errors.js';
import { pack, unpack } from '../shared/codec.js';
import { awaitedSessionsMax, keyRecordsMax, sessionIdleMsMax, sessionSweepIntervalMs, writeBatchOpsMax, writeWindowMax } from '../shared/limits.js';
import type { Attrs } from '../shared/protocol.js';
import { CompletionRecords } from './completion-records.js';
import { decodeStored, encodeStored, recordedWrite, type Stored, type Writer } from './stored-value.js';
import type { Storage } from './storage.js';

/** A write's request id: the client's session (8 bytes, and as hex), its sequence number, and the lowest it awaits. */
export interface RequestId {
  session: Buffer;
  sessionHex: string;
  seq: number;
  awaiting: number;
}

/** A client's write, reduced to what it does: the new value from the current one (undefined deletes the key). */
export interface Write {
  key: Buffer;
  apply: (current: Attrs | undefined) => { value: Attrs | undefined; result: unknown };
  rid: RequestId;
}

/**
 * Where a write reached this daemon from: a client (at the head), the predecessor in the partition's chain, or the
 * tail, forwarding to this daemon as the partition's joining member.
 */
export type Origin = 'client' | 'chain' | 'joining';

/** A key and its new encoded value as committed (undefined: deleted). What replication sends. */
export type Change = [key: Buffer, encoded: Buffer | undefined];

/**
 * Runs after a batch is committed locally and before its writes are answered (replication waits here).
 * `asJoining`: every change of the batch reached this daemon as the partition's joining member.
 */
export type AfterCommit = (changes: Change[], asJoining: boolean) => Promise<void>;

export interface QueueEnv {
  /** The largest encoded value a write may leave. */
  valueBytesMax(): number;
  /** Wall-clock ms, for the age of completion records (they outlive the process and move between hosts). */
  nowMs(): number;
}

interface Settle {
  resolve: (result: unknown) => void;
  reject: (error: KvError) => void;
}
interface QueuedWrite extends Write, Settle {
  kind: 'write';
}
interface QueuedChanges extends Settle {
  kind: 'changes';
  changes: Change[];
  origin: Exclude<Origin, 'client'>;
}
interface QueuedTask extends Settle {
  kind: 'task';
  task: () => Promise<unknown>;
  /** It writes partition data: the completion-record index no longer holds. */
  writes: boolean;
}
type Item = QueuedWrite | QueuedChanges | QueuedTask;

const sameBatch = (a: Item, b: Item): boolean =>
  a.kind === b.kind && a.kind !== 'task' && (a.kind === 'write' || a.origin === (b as QueuedChanges).origin);

export class WriteQueue {
  private queue: Item[] = [];
  private running = false;
  /** Entries of the batch (or the one task) being committed and replicated now: set once per batch. */
  private batchEntries = 0;
  private idleWaiters: Array<() => void> = [];
  /** The partition's completion records, while only this daemon's client writes change them (see completion-records.ts). */
  private records: CompletionRecords | undefined;
  private lastSweepMs = 0;
  /**
   * The lowest sequence number each session awaits, as its latest write here said: a value's writer whose session
   * awaits only later ones never sends it again, so overwriting the value may drop its record. Bounded; a session
   * missing here counts as awaiting everything.
   */
  private readonly awaitingBySession = new Map<string, number>();

  constructor(
    private readonly spaceId: number,
    private readonly partition: number,
    private readonly storage: Storage,
    private readonly env: QueueEnv,
    private readonly afterCommit: AfterCommit = async () => {},
  ) {}

  /** A client's write at the head. */
  submit(write: Write): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.admit({ kind: 'write', key: write.key, apply: write.apply, rid: write.rid, resolve, reject });
    });
  }

  /** Changes committed by the predecessor (or, for the joining member, by the tail): applied as they are. */
  replicated(changes: Change[], origin: Exclude<Origin, 'client'>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.admit({ kind: 'changes', changes, origin, resolve: resolve as () => void, reject });
    });
  }

  /**
   * Runs `task` in the queue: after everything admitted before it, before anything admitted after. `writes`: it
   * changes the partition's data here (a page received, a drop), so the completion-record index no longer holds.
   */
  exclusive<T>(task: () => Promise<T>, writes: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.admit({ kind: 'task', task, writes, resolve: resolve as (result: unknown) => void, reject });
    });
  }

  private admit(item: Item): void {
    this.queue.push(item);
    if (!this.running) void this.run();
  }

  /**
   * What the queue holds, for metrics: entries waiting for a batch (client writes, batches from the predecessor,
   * tasks) and entries of the batch out now. Read at scrape time from the queue's own state.
   */
  get depth(): { waiting: number; inBatch: number } {
    return { waiting: this.queue.length, inBatch: this.batchEntries };
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
      if (first.kind === 'task') {
        this.queue.shift();
        if (first.writes) this.records = undefined;
        this.batchEntries = 1;
        await first.task().then(first.resolve, (error) => first.reject(asKvError(error)));
        continue;
      }
      let end = 1;
      let ops = first.kind === 'write' ? 1 : first.changes.length;
      while (end < this.queue.length && ops < writeBatchOpsMax && sameBatch(first, this.queue[end]!)) {
        const next = this.queue[end++]!;
        ops += next.kind === 'write' ? 1 : (next as QueuedChanges).changes.length;
      }
      const batch = this.queue.splice(0, end);
      this.batchEntries = batch.length;
      if (first.kind === 'write') await this.commitWrites(batch as QueuedWrite[]);
      else await this.commitChanges(batch as QueuedChanges[]);
    }
    this.running = false;
    this.batchEntries = 0;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Changes a predecessor committed: applied as they are, in order, then sent on. */
  private async commitChanges(batch: QueuedChanges[]): Promise<void> {
    this.records = undefined;
    const changed = new Map<string, Change>();
    for (const item of batch) for (const change of item.changes) changed.set(change[0].toString('latin1'), change);
    try {
      const changes = [...changed.values()];
      await this.storage.write(changes);
      await this.afterCommit(changes, batch[0]!.origin === 'joining');
    } catch (error) {
      for (const item of batch) item.reject(asKvError(error));
      return;
    }
    for (const item of batch) item.resolve(null);
  }

  private async commitWrites(batch: QueuedWrite[]): Promise<void> {
    let records: CompletionRecords;
    try {
      records = this.records ??= CompletionRecords.from(this.spaceId, this.partition, await this.storage.records(this.spaceId, this.partition));
    } catch (error) {
      for (const write of batch) write.reject(asKvError(error));
      return;
    }
    const nowMs = this.env.nowMs();
    /** Each key's value as this batch leaves it so far (later writes in the batch see earlier ones). */
    const current = new Map<string, { stored: Stored | undefined; bytes: Buffer | undefined }>();
    const changed = new Map<string, Change>();
    /** Records this batch put in the record range, by key: a retry in the same batch finds its first attempt here. */
    const made = new Map<string, Buffer>();
    const dropped: Buffer[] = [];
    const outcomes: Array<{ ok: true; result: unknown } | { ok: false; error: KvError }> = [];
    /** Puts a write's record in the record range (it must outlive its value there, or it has none). */
    const spill = (session: Uint8Array, seq: number, result: unknown) => {
      const session8 = Buffer.from(session.buffer, session.byteOffset, session.byteLength);
      const key = records.key(session8, seq);
      const record = pack([nowMs, result]);
      const id = key.toString('latin1');
      made.set(id, record);
      changed.set(id, [key, record]);
      records.add(session8.toString('hex'), session8, seq, nowMs);
    };
    for (const write of batch) {
      const { rid } = write;
      try {
        if (rid.awaiting > rid.seq || rid.seq - rid.awaiting >= writeWindowMax) {
          throw badRequest(`write ${rid.seq} of session ${rid.sessionHex} is outside its window (lowest awaited ${rid.awaiting}, at most ${writeWindowMax} apart)`);
        }
        this.learnAwaiting(rid.sessionHex, rid.awaiting);
        const id = write.key.toString('latin1');
        let now = current.get(id);
        if (!now) {
          const bytes = this.storage.getRaw(write.key);
          now = { stored: bytes === undefined ? undefined : decodeStored(bytes), bytes };
          current.set(id, now);
        }
        // A record of its own exists only for a write overwritten or deleting: look it up only then.
        const recordKey = made.size > 0 || records.has(rid.sessionHex, rid.seq) ? records.key(rid.session, rid.seq) : undefined;
        const recordId = recordKey?.toString('latin1');
        const spilled = recordKey && (made.get(recordId!) ?? (records.has(rid.sessionHex, rid.seq) ? this.storage.getRaw(recordKey) : undefined));
        const recorded = recordedWrite(now.stored, rid.session, rid.seq);
        if (recorded !== undefined || spilled !== undefined) {
          // Applied before (an answer lost on its way, or a head change): change nothing, answer what it answered.
          // The key's current value (and the record, if it has one of its own) is committed again, so the answer
          // waits until this batch is down the chain: then every replica has the first attempt's effect, even where
          // the batch that carried it never arrived (a head that crashed after committing it and came back).
          if (!changed.has(id)) changed.set(id, [write.key, now.bytes]);
          if (spilled !== undefined) changed.set(recordId!, [recordKey!, spilled]);
          const result = recorded !== undefined ? recorded.result : (unpack(spilled!) as [number, unknown])[1];
          outcomes.push({ ok: true, result });
          records.collect(rid.sessionHex, rid.awaiting, nowMs, dropped);
          continue;
        }
        const { value, result } = write.apply(now.stored?.attrs);
        const writer: Writer = { session: rid.session, seq: rid.seq, result, resultIsValue: result === value };
        const attrs = value === undefined ? undefined : pack(value);
        const valueBytesMax = this.env.valueBytesMax();
        if (attrs && attrs.length > valueBytesMax) throw badRequest(`the value would be ${attrs.length} bytes; the limit is ${valueBytesMax}`);
        // The records the key keeps: the writes that made its value, while their sessions may send them again.
        const earlier: Writer[] = [];
        const previous = now.stored?.writer;
        for (const kept of previous ? [previous, ...now.stored!.earlier] : []) {
          if (!this.mayResend(kept, rid)) continue;
          // A deletion leaves no value to keep them; an atomic_add's result was a value the key no longer holds.
          if (value === undefined || kept.resultIsValue || earlier.length >= keyRecordsMax) spill(kept.session, kept.seq, kept.result);
          else earlier.push(kept);
        }
        const bytes = attrs && encodeStored(attrs, writer, earlier);
        if (bytes === undefined) spill(rid.session, rid.seq, result);
        now.stored = value === undefined ? undefined : { attrs: value, writer, earlier };
        now.bytes = bytes;
        changed.set(id, [write.key, bytes]);
        outcomes.push({ ok: true, result });
      } catch (error) {
        outcomes.push({ ok: false, error: asKvError(error) });
      }
      records.collect(rid.sessionHex, rid.awaiting, nowMs, dropped);
    }
    if (nowMs - this.lastSweepMs >= sessionSweepIntervalMs) {
      this.lastSweepMs = nowMs;
      records.expire(nowMs - sessionIdleMsMax, dropped);
      this.awaitingBySession.clear(); // forgetting is safe: a session not known here has its overwritten records kept
    }
    for (const key of dropped) {
      const id = key.toString('latin1');
      if (!made.has(id)) changed.set(id, [key, undefined]);
    }
    if (changed.size > 0) {
      const changes = [...changed.values()];
      try {
        await this.storage.write(changes);
      } catch (error) {
        this.records = undefined; // it counts records that were not committed
        for (const write of batch) write.reject(asKvError(error));
        return;
      }
      try {
        await this.afterCommit(changes, false);
      } catch (error) {
        for (const write of batch) write.reject(asKvError(error));
        return;
      }
    }
    batch.forEach((write, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.result);
      else write.reject(outcome.error);
    });
  }

  /** Records the lowest sequence number a session awaits, as its writes here say. */
  private learnAwaiting(sessionHex: string, awaiting: number): void {
    if ((this.awaitingBySession.get(sessionHex) ?? 0) >= awaiting) return;
    if (this.awaitingBySession.size >= awaitedSessionsMax) this.awaitingBySession.clear();
    this.awaitingBySession.set(sessionHex, awaiting);
  }

  /** Whether a write's session may still send it again: it has not said it awaits only later ones. */
  private mayResend(writer: Writer, current: RequestId): boolean {
    // Most often the value's last writer is the session writing now, which has just said what it awaits.
    if (current.session.equals(writer.session)) return current.awaiting <= writer.seq;
    const session = Buffer.from(writer.session.buffer, writer.session.byteOffset, writer.session.byteLength).toString('hex');
    const awaiting = this.awaitingBySession.get(session);
    return awaiting === undefined || awaiting <= writer.seq;
  }
}

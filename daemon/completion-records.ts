// Exactly-once writes, after RIFL (Lee et al., SOSP 2015). Every write carries a request id: the client's session
// (issued by the coordinator) and a sequence number. The head commits a completion record (id → result) in the
// same LevelDB batch as the write, and the record travels with the write down the chain and with the partition
// in state transfer, so whichever daemon heads the chain next knows the write happened. A write whose id is
// recorded changes nothing and answers the recorded result.
//
// Records are dropped when they can no longer be asked for: a write carries the lowest sequence number its
// session still awaits an answer for (the client never sends a lower one again), and a session that has not
// written to a partition for `sessionIdleMsMax` is gone (a client gives up on an operation within
// `requestTimeoutMsMax`). A session's records in a partition are bounded by `writeWindowMax`: the client never
// has more sequence numbers than that between the lowest it awaits and the newest.
//
// This is the index of one partition's records, kept by its head: which (session, seq) are recorded, so the
// common write (not a retry) needs no lookup in LevelDB. It is built from the partition's records when needed and
// is valid only while every write to the partition goes through the head's own client path; the write queue
// drops it whenever anything else writes the partition (a replicated batch, a transfer page, a drop).
import { recordKey, parseRecordKey } from '../shared/key-layout.js';
import { unpack } from '../shared/codec.js';

interface SessionRecords {
  session: Buffer;
  /**
   * Recorded sequence numbers, in the order they were recorded: nearly ascending, since a client numbers its writes
   * as it sends them (retries and other partitions' writes make the gaps).
   */
  seqs: Set<number>;
  /** Wall-clock ms of the session's last write here: records outlive a daemon restart, and move between hosts. */
  lastAtMs: number;
}

export class CompletionRecords {
  private readonly sessions = new Map<string, SessionRecords>();

  constructor(
    private readonly spaceId: number,
    private readonly partition: number,
  ) {}

  /** The index of records stored as `entries` (raw keys and values of the partition's record range). */
  static from(spaceId: number, partition: number, entries: Array<[Buffer, Buffer]>): CompletionRecords {
    const records = new CompletionRecords(spaceId, partition);
    for (const [key, value] of entries) {
      const id = parseRecordKey(key);
      if (!id) continue;
      const [atMs] = unpack(value) as [number, unknown];
      records.add(id.session, Buffer.from(id.session, 'hex'), id.seq, atMs);
    }
    return records;
  }

  key(session: Buffer, seq: number): Buffer {
    return recordKey(this.spaceId, this.partition, session, seq);
  }

  has(sessionHex: string, seq: number): boolean {
    return this.sessions.get(sessionHex)?.seqs.has(seq) ?? false;
  }

  add(sessionHex: string, session: Buffer, seq: number, atMs: number): void {
    let records = this.sessions.get(sessionHex);
    if (!records) {
      records = { session, seqs: new Set(), lastAtMs: atMs };
      this.sessions.set(sessionHex, records);
    }
    records.seqs.add(seq);
    records.lastAtMs = Math.max(records.lastAtMs, atMs);
  }

  /** Forgets the session's records below `awaiting` and returns their keys, for the batch to delete. */
  collect(sessionHex: string, awaiting: number, nowMs: number, into: Buffer[]): void {
    const records = this.sessions.get(sessionHex);
    if (!records) return;
    records.lastAtMs = Math.max(records.lastAtMs, nowMs);
    // From the oldest on, up to the first still awaited: constant work per write. A lower one recorded out of order
    // behind it goes when that one does.
    for (const seq of records.seqs) {
      if (seq >= awaiting) return;
      records.seqs.delete(seq);
      into.push(this.key(records.session, seq));
    }
  }

  /** Forgets every session idle since before `beforeMs` and returns the keys of its records. */
  expire(beforeMs: number, into: Buffer[]): void {
    for (const [hex, records] of this.sessions) {
      if (records.lastAtMs >= beforeMs) continue;
      for (const seq of records.seqs) into.push(this.key(records.session, seq));
      this.sessions.delete(hex);
    }
  }

  /** Records held, for tests and metrics. */
  get size(): number {
    let n = 0;
    for (const records of this.sessions.values()) n += records.seqs.size;
    return n;
  }
}

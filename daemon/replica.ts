// One partition replica on this daemon: the chain protocol as one replica sees it.
//
// The coordinator gives each partition a chain of daemons (shared/config.ts, PartitionInfo). On every config a
// replica computes its role in it once (chain-role.ts): head, middle, tail, sole (head and tail at once), joining
// or none, with its successor. Everything a request needs is then a comparison.
//
// Writes. A client's write enters at the head, goes through the replica's write queue (write-queue.ts: batched,
// committed atomically with its completion record), and the batch is sent to the successor as the changes it
// committed (`replicate`). Each member applies a batch from its predecessor through its own queue and sends it on
// before answering, so a write is answered only once every member of the extended chain (the joining member
// included) has committed it. One batch per partition is out at a time, so order is kept.
//
// Sending down the chain. If the successor cannot be reached, or refuses for a reason time can cure, the batch is
// sent again, to whatever successor the newest config names, until it succeeds or this daemon stops: a chain is
// never left with a write its head has and its tail lacks. A config naming another successor abandons a send in
// flight (a hung successor keeps its connection open) and sends to the new one. At the end of the chain there is
// nothing to send. A replica that left the chain, or its role in it, with a batch unsent refuses it with
// STALE_CONFIG: the sender (a client, or the predecessor) sends it again by the new config. A refusal that
// sending again cannot cure (BAD_REQUEST: a bug, or a successor whose storage fails) fails the batch's writes with
// INTERNAL instead of stalling the queue for good.
//
// Receiving. A member other than the head takes batches forwarded by a config no older than the partition's
// replica set (`since`), each key inside the partition (routing.ts). The joining member takes them as such: what
// it took in another role does not count once it joins (its data is replaced by the transfer).
//
// Joining. The tail streams the partition to the joining member page by page; each page is read and sent from
// inside the tail's write queue, so no write commits between the read and the send, and pages and the batches the
// tail forwards (the joining member is its successor) arrive in commit order. The joining member clears the
// partition on the first page, applies pages and batches in arrival order through its queue, and after the last
// page tells the coordinator, which makes it the new tail.
//
// Reads. The tail answers reads from LevelDB, within the daemon's read lease (read-lease.ts). While a member
// joins, a read goes through the queue, after the batches before it: nothing is answered that the joining
// member, the next tail, might lack.
//
// Leaving. A tail that a move replaces stays in the chain, as a middle, until it has acknowledged a config in
// which it is not the tail (PartitionInfo.leaving): writes still pass it, and it no longer answers reads. A
// replica that the config moves off the partition (the space still exists) deletes its data, in its queue, after
// what was admitted before, unless the partition is back here by then.
import type { ClusterConfig, SpaceInfo } from '../shared/config.js';
import { findServer } from '../shared/config.js';
import type { ConnectionPool } from '../shared/connection-pool.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import {
  reconnectDelayMsMax,
  reconnectDelayMsMin,
  requestTimeoutMsDefault,
  scanPageBytesMax,
  scanPageEntriesMax,
  transferRetryDelayMs,
} from '../shared/limits.js';
import { daemonPath, type MessageOf } from '../shared/protocol.js';
import { noRole, roleOf, successorFor, transferTarget, type Role } from './chain-role.js';
import type { PeerReports } from './peer-reports.js';
import { checkReplicated, checkTransferred } from './routing.js';
import type { Storage } from './storage.js';
import { WriteQueue, type Change, type QueueEnv, type Write } from './write-queue.js';

/** What the replicas of one daemon share: storage, connections, the freeze, the daemon's lifecycle. */
export interface ReplicaHost {
  readonly storage: Storage;
  readonly env: QueueEnv;
  /** Connections to successors, for batches. */
  readonly chainPeers: ConnectionPool;
  /** Connections to joining members, for transfer pages. */
  readonly transferPeers: ConnectionPool;
  /** Where replication and transfers say which daemons they cannot reach (peer-reports.ts). */
  readonly peers: PeerReports;
  readonly log: Logger;
  /** Whether a backup's freeze holds work that starts a change to partition data. */
  readonly frozen: boolean;
  /** Admits held work when the freeze ends (or refuses it, when too much is held already). */
  holdBack(admit: () => void, reject: (error: KvError) => void): void;
  /** Resolves when a config newer than `version` runs here, or after `timeoutMs`. */
  configAfter(version: number, timeoutMs: number): Promise<void>;
  stopping(): boolean;
  reportDone(spaceId: number, partition: number, source: string): Promise<unknown>;
}

/** Answers from a successor after which the same batch may succeed: to the same daemon later, or to another. */
const retryableCodes = new Set(['STALE_CONFIG', 'WRONG_SERVER', 'UNAVAILABLE', 'TIMEOUT', 'CONNECTION_LOST']);

/** A batch on its way to a successor, so a config that replaces the successor can redirect it. */
interface Sending {
  successor: string;
  asJoining: boolean;
  abandon: (error: KvError) => void;
}

/** A batch committed here and sent down the chain that the rest of it has not acknowledged yet (for metrics). */
export interface Unacknowledged {
  /** The keys the batch changed. */
  changes: number;
  /** When it was committed here and first sent (performance.now()). */
  sinceMs: number;
}

export class Replica {
  private current: Role = noRole;
  private replicaSetSince = 0;
  private config: ClusterConfig | undefined;
  private me: string | undefined;
  private readonly queue: WriteQueue;
  private sending: Sending | undefined;
  private unacknowledged: Unacknowledged | undefined;
  /** The joining members this replica, as the tail, is sending the partition to. */
  private readonly transfersOut = new Set<string>();

  constructor(
    readonly spaceId: number,
    readonly partition: number,
    private readonly host: ReplicaHost,
  ) {
    this.queue = new WriteQueue(spaceId, partition, host.storage, host.env, (changes, asJoining) => this.sendDown(changes, asJoining));
  }

  /** This daemon's role in the partition by the current config; none before the first. */
  get role(): Role {
    return this.current;
  }

  /** The config version at which the partition's replica set last changed. */
  get since(): number {
    return this.replicaSetSince;
  }

  /** Takes the config's view of this partition (`space` undefined: the space is gone). */
  onConfig(config: ClusterConfig, me: string | undefined, space: SpaceInfo | undefined): void {
    const previous = this.current;
    const info = space?.partitions[this.partition];
    this.config = config;
    this.me = me;
    this.current = me === undefined ? noRole : roleOf(info, me);
    this.replicaSetSince = info?.since ?? 0;
    if (me === undefined) return;
    if (!sameRole(previous, this.current)) {
      this.host.log.debug({ spaceId: this.spaceId, partition: this.partition, version: config.version, from: describeRole(previous), to: describeRole(this.current) }, 'chain role changed');
    }
    this.considerTransfer();
    const sending = this.sending;
    if (sending && successorFor(this.current, sending.asJoining) !== sending.successor) {
      sending.abandon(new KvError('STALE_CONFIG', `the successor of partition ${this.partition} changed`));
    }
    // A removed space is dropped as a whole (daemon.ts).
    if (previous.kind !== 'none' && this.current.kind === 'none' && space !== undefined) this.drop();
  }

  /** A client's write, at the head. */
  submit(write: Write): Promise<unknown> {
    if (!this.host.frozen) return this.queue.submit(write);
    return new Promise((resolve, reject) => this.host.holdBack(() => void this.queue.submit(write).then(resolve, reject), reject));
  }

  /**
   * A batch from the predecessor (or, for the joining member, from the tail), checked against this replica's role.
   * Never held by a freeze: it comes from work admitted upstream before the freeze, and the upstream daemon's
   * quiesce waits for it.
   */
  receive(message: Pick<MessageOf<'replicate'>, 'v' | 'spaceId' | 'partition' | 'changes'>): Promise<void> {
    const origin = checkReplicated(this.config!, this.current, this.replicaSetSince, message);
    const changes = message.changes.map(([key, value]) => [asBuffer(key), value === null ? undefined : asBuffer(value)] as Change);
    return this.queue.replicated(changes, origin);
  }

  /** Changes applied as they are, taken in the given role without a check (tests; the daemon uses `receive`). */
  replicated(changes: Change[], origin: 'chain' | 'joining'): Promise<void> {
    return this.queue.replicated(changes, origin);
  }

  /**
   * Runs `task` in the replica's queue: after everything admitted before it, before anything admitted after.
   * `writes`: it changes the partition's data here (a page received, a drop). `held`: it starts a change to
   * partition data (a drop, a page sent from here), so a freeze holds it.
   */
  exclusive<T>(task: () => Promise<T>, options: { writes: boolean; held: boolean }): Promise<T> {
    if (!options.held || !this.host.frozen) return this.queue.exclusive(task, options.writes);
    return new Promise<T>((resolve, reject) =>
      this.host.holdBack(() => void this.queue.exclusive(task, options.writes).then(resolve, reject), reject),
    );
  }

  /**
   * A read routed here as the tail (replicas.ts checks the read lease and the role first). While a member joins
   * after this tail, a batch on its way to it is committed here but not yet there: reading after it (in the queue)
   * returns nothing the joining member lacks.
   */
  read<T>(work: (replica: Replica) => T | Promise<T>): T | Promise<T> {
    if (transferTarget(this.current) !== undefined) {
      return this.queue.exclusive(async () => work(this), false);
    }
    return work(this);
  }

  /** Entries waiting in the replica's write queue, and in the batch it has out (metrics, at scrape time). */
  get queueDepth(): { waiting: number; inBatch: number } {
    return this.queue.depth;
  }

  /** The batch committed here that the rest of the chain has not acknowledged yet, if one is out (metrics). */
  get replicationPending(): Unacknowledged | undefined {
    return this.unacknowledged;
  }

  /** Resolves when everything admitted to the queue so far has been committed (and replicated) or failed. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** After a batch is committed here: sends it down the chain; answers once the rest of the chain has it. */
  private async sendDown(changes: Change[], asJoining: boolean): Promise<void> {
    try {
      await this.sendUntilAcknowledged(changes, asJoining);
    } finally {
      this.unacknowledged = undefined;
    }
  }

  private async sendUntilAcknowledged(changes: Change[], asJoining: boolean): Promise<void> {
    const { spaceId, partition } = this;
    let wait = reconnectDelayMsMin;
    const sinceMs = performance.now();
    for (let attempt = 1; ; attempt++) {
      const config = this.config;
      if (!config || this.me === undefined) return;
      const next = successorFor(this.current, asJoining);
      if (next === null) return; // the end of the chain: nothing further to replicate to
      if (next === 'left') {
        // Moved out of the chain with this batch unsent: it must not be acknowledged. The sender (a client, or the
        // predecessor, which sends it again to its new successor) learns the route is stale.
        throw new KvError('STALE_CONFIG', 'this daemon left the partition\'s chain (or its role in it) before the write was replicated', config.version);
      }
      // Once per batch, and only where there is a successor (one batch is out at a time).
      this.unacknowledged ??= { changes: changes.length, sinceMs };
      const server = findServer(config, next);
      try {
        if (!server || server.state !== 'available') throw new KvError('UNAVAILABLE', `successor ${next} is not available`);
        const { peers } = this.host;
        const connection = await peers.connecting(next, sinceMs, this.host.chainPeers.get(server.address, daemonPath(server.id, config.incarnation), requestTimeoutMsDefault));
        await this.redirectable(next, asJoining, peers.answering(next, sinceMs, connection.request(
          {
            t: 'replicate',
            v: config.version,
            spaceId,
            partition,
            changes: changes.map(([key, encoded]): [Uint8Array, Uint8Array | null] => [key, encoded ?? null]),
          },
          requestTimeoutMsDefault,
        )));
        return;
      } catch (error) {
        if (this.host.stopping()) throw new KvError('UNAVAILABLE', 'this daemon is shutting down');
        const refusal = asKvError(error);
        if (!retryableCodes.has(refusal.code)) {
          this.host.log.error({ spaceId, partition, successor: next, code: refusal.code, err: refusal.message }, 'the successor refused a replicated batch; failing its writes');
          throw new KvError('INTERNAL', `successor ${next} refused the replicated write (${refusal.code}: ${refusal.message})`);
        }
        if (attempt === 1 || wait >= reconnectDelayMsMax) {
          this.host.log.warn({ spaceId, partition, successor: next, err: refusal.message, attempt }, 'replication to the successor failed; retrying');
        }
        await this.host.configAfter(config.version, wait);
        wait = Math.min(wait * 2, reconnectDelayMsMax);
      }
    }
  }

  private redirectable<T>(successor: string, asJoining: boolean, request: Promise<T>): Promise<T> {
    let entry!: Sending;
    const abandoned = new Promise<never>((_, reject) => {
      entry = { successor, asJoining, abandon: reject };
    });
    this.sending = entry;
    return Promise.race([request, abandoned]).finally(() => {
      if (this.sending === entry) this.sending = undefined;
    });
  }

  /** As the tail with a member joining: sends it the partition, unless that is under way. */
  private considerTransfer(): void {
    const target = transferTarget(this.current);
    if (target === undefined || this.host.stopping() || this.transfersOut.has(target)) return;
    this.transfersOut.add(target);
    this.sendTransfer(target)
      .catch((error) => {
        this.host.log.warn({ spaceId: this.spaceId, partition: this.partition, target, err: asKvError(error).message }, 'transfer failed; will retry');
        setTimeout(() => this.considerTransfer(), transferRetryDelayMs);
      })
      .finally(() => this.transfersOut.delete(target));
  }

  private async sendTransfer(target: string): Promise<void> {
    const { spaceId, partition } = this;
    const started = performance.now();
    let after: Buffer | null = null;
    let entries = 0;
    const { log } = this.host;
    log.debug({ spaceId, partition, target, version: this.config?.version }, 'transfer starting');
    let pageSentAt = performance.now();
    for (let first = true; ; first = false) {
      const config = this.config!;
      const me = this.me!;
      // Stop when this daemon is no longer the tail or the target no longer joining: another transfer takes over.
      if (transferTarget(this.current) !== target) {
        log.debug({ spaceId, partition, target, entries, role: describeRole(this.current) }, 'transfer abandoned: this replica no longer sends to the target');
        return;
      }
      const server = findServer(config, target);
      if (!server) {
        log.debug({ spaceId, partition, target, entries }, 'transfer abandoned: the target left the cluster');
        return;
      }
      const { peers } = this.host;
      const connection = await peers.connecting(target, pageSentAt, this.host.transferPeers.get(server.address, daemonPath(server.id, config.incarnation), requestTimeoutMsDefault));
      // Held by a freeze like a client write: the page starts a change to partition data on the joining daemon.
      const last: boolean = await this.exclusive(async () => {
        const page = await this.host.storage.scanRaw(spaceId, partition, after, scanPageEntriesMax, scanPageBytesMax);
        await peers.answering(target, pageSentAt, connection.request(
          { t: 'transfer', v: config.version, spaceId, partition, source: me, first, done: page.next === null, entries: page.entries },
          requestTimeoutMsDefault,
        ));
        pageSentAt = performance.now();
        entries += page.entries.length;
        log.debug({ spaceId, partition, target, page: page.entries.length, entries, last: page.next === null }, 'transfer page sent');
        after = page.next;
        return page.next === null;
      }, { writes: false, held: true });
      if (last) break;
    }
    this.host.log.info({ spaceId, partition, target, entries, ms: Math.round(performance.now() - started) }, 'transfer sent');
  }

  /** The joining side: applies one page in order with forwarded batches; reports after the last. */
  async receiveTransfer(message: MessageOf<'transfer'>): Promise<null> {
    checkTransferred(this.config!, this.current, this.replicaSetSince, message);
    const { spaceId, partition } = this;
    const { storage } = this.host;
    // Never held by a freeze: the tail sent it before it froze, and the tail's quiesce waits for this answer.
    await this.exclusive(async () => {
      if (message.first) await storage.clearPartition(spaceId, partition);
      await storage.write(message.entries.map(([key, value]) => [Buffer.from(key), Buffer.from(value)] as const));
    }, { writes: true, held: false });
    this.host.log.debug({ spaceId, partition, source: message.source, page: message.entries.length, first: message.first, last: message.done }, 'transfer page applied');
    if (message.done) {
      await this.host.reportDone(spaceId, partition, message.source);
      this.host.log.info({ spaceId, partition, source: message.source }, 'transfer received; joining the chain');
    }
    return null;
  }

  /**
   * Deletes this replica's data once the partition moved away; held by a freeze like any change here. Skipped if
   * the partition is back by the time it runs: a transfer to it clears the partition itself, and pages received
   * are never held, so a drop held past them would delete what they brought.
   */
  private drop(): void {
    const { spaceId, partition } = this;
    this.exclusive(async () => {
      if (this.current.kind !== 'none') return false;
      await this.host.storage.clearPartition(spaceId, partition);
      return true;
    }, { writes: true, held: true })
      .then((dropped) => dropped && this.host.log.info({ spaceId, partition }, 'dropped a partition that moved away'))
      .catch((error) => this.host.log.error({ err: error, spaceId, partition }, 'cannot drop a partition that moved away'));
  }
}

const sameRole = (a: Role, b: Role) => describeRole(a) === describeRole(b);

/** A role in words for the debug log: its kind and the daemon it works with. */
function describeRole(role: Role): string {
  switch (role.kind) {
    case 'none':
      return 'none';
    case 'joining':
      return `joining from ${role.tail ?? '(no tail)'}`;
    case 'head':
    case 'middle':
      return `${role.kind} before ${role.successor}`;
    case 'tail':
    case 'sole':
      return role.joiner === undefined ? role.kind : `${role.kind}, sending to ${role.joiner}`;
  }
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

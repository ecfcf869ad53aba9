// The daemon's partition replicas (replica.ts), one per (space id, partition) this daemon has held, and what they
// share: storage, the connections to other daemons, the config they run by, and the backup freeze. A request is
// routed here to its replica, which judges it by the role it computed for the current config.
//
// A backup's freeze holds what starts a change to partition data here: client writes and writing tasks (transfer
// pages sent from here, partition and space drops) submitted after `hold()` wait, in order and bounded, while
// what was admitted before is committed and replicated; `hold()` resolves when it is, which is the daemon's
// quiesced point. Changes from a predecessor and pages received are never held: they come from work admitted
// upstream before the freeze, and the upstream daemon's quiesce waits for them. `release()` admits the held
// work in arrival order, across replicas. Nothing held is dropped or applied twice.
import type { ClusterConfig, SpaceInfo } from '../shared/config.js';
import { ConnectionPool } from '../shared/connection-pool.js';
import type { TlsSettings } from '../shared/tls.js';
import { KvError } from '../shared/errors.js';
import { heldWritesMax } from '../shared/limits.js';
import type { Logger } from '../shared/log.js';
import type { MessageOf } from '../shared/protocol.js';
import { noRole } from './chain-role.js';
import { PeerReports } from './peer-reports.js';
import type { ReadLease } from './read-lease.js';
import { Replica, type ReplicaHost } from './replica.js';
import { checkForwarded, checkReplicated, checkServes, checkTransferred, locate, type Addressed } from './routing.js';
import type { Storage } from './storage.js';
import type { QueueEnv } from './write-queue.js';

export interface ReplicasOptions {
  storage: Storage;
  env: QueueEnv;
  log: Logger;
  stopping?: () => boolean;
  /**
   * This daemon's server id, once registered. A new daemon's first config can arrive before the coordinator's
   * answer naming it: the replicas take the id when it is known (tests pass it to `onConfig` instead).
   */
  serverId?: () => string | undefined;
  /** The daemon's read lease; undefined: reads need none (tests). */
  lease?: ReadLease;
  /** Tells the coordinator a transfer to this daemon is complete. */
  reportDone?: (spaceId: number, partition: number, source: string) => Promise<unknown>;
  /** Tells the coordinator this daemon cannot reach a daemon it sends to, or reaches it again (peer-reports.ts). */
  tellPeer?: (serverId: string, reachable: boolean) => Promise<unknown>;
  /** TLS on: connections to other daemons are TLS, with this daemon's certificate. */
  tls?: TlsSettings | undefined;
}

// partitionsMax keeps the partition within 16 bits, and space ids are far below 2^36: one exact number.
const idOf = (spaceId: number, partition: number): number => spaceId * 65_536 + partition;

export class Replicas implements ReplicaHost {
  private readonly replicas = new Map<number, Replica>();
  private config: ClusterConfig | undefined;
  private me: string | undefined;
  private spacesByName = new Map<string, SpaceInfo>();
  private spacesById = new Map<number, SpaceInfo>();
  private configWaiters: Array<() => void> = [];
  /** Work a freeze holds, in arrival order; each admits its item when called. */
  private held: Array<() => void> = [];
  private holding = false;
  readonly chainPeers: ConnectionPool;
  readonly transferPeers: ConnectionPool;
  readonly peers: PeerReports;
  readonly storage: Storage;
  readonly env: QueueEnv;
  readonly log: Logger;

  constructor(private readonly options: ReplicasOptions) {
    this.chainPeers = new ConnectionPool({ tls: options.tls });
    this.transferPeers = new ConnectionPool({ tls: options.tls });
    this.storage = options.storage;
    this.env = options.env;
    this.log = options.log;
    this.peers = new PeerReports({
      config: () => this.config,
      tell: options.tellPeer ?? (async () => null),
      stopping: () => this.stopping(),
      tls: options.tls,
      log: options.log,
    });
  }

  /** Runs every replica by `config`: each computes its role once, here, not per request. */
  onConfig(config: ClusterConfig, me: string | undefined): void {
    this.config = config;
    this.me = me;
    const byName = new Map<string, SpaceInfo>();
    for (const space of config.spaces) if (!byName.has(space.name)) byName.set(space.name, space);
    this.spacesByName = byName;
    this.spacesById = new Map(config.spaces.map((space) => [space.id, space]));
    if (me !== undefined) {
      for (const space of config.spaces) {
        space.partitions.forEach((p, partition) => {
          const id = idOf(space.id, partition);
          if ((p.joining?.server === me || p.chain.includes(me)) && !this.replicas.has(id)) {
            this.log.debug({ spaceId: space.id, partition, version: config.version }, 'a replica of a partition new to this daemon');
            this.replicas.set(id, new Replica(space.id, partition, this));
          }
        });
      }
    }
    for (const replica of this.replicas.values()) replica.onConfig(config, me, this.spacesById.get(replica.spaceId));
    for (const wake of this.configWaiters.splice(0)) wake();
  }

  /** The replica of a partition, made if this daemon has none yet (work on a partition outside any config: tests). */
  of(spaceId: number, partition: number): Replica {
    const id = idOf(spaceId, partition);
    let replica = this.replicas.get(id);
    if (!replica) {
      replica = new Replica(spaceId, partition, this);
      this.replicas.set(id, replica);
      if (this.config) replica.onConfig(this.config, this.me, this.spacesById.get(spaceId));
    }
    return replica;
  }

  /** Every replica this daemon has held (metrics read their queues and replication at scrape time). */
  all(): Iterable<Replica> {
    return this.replicas.values();
  }

  /** The replica that serves a client's request, which must be its head (`write`) or its tail. */
  route(request: Addressed, write: boolean): Replica {
    this.identify();
    const routed = locate(this.config, this.me, request, this.spaceNamed);
    const replica = this.replicas.get(idOf(routed.space.id, routed.partition));
    checkServes(this.config!, replica?.role ?? noRole, routed, write);
    return replica!; // a daemon with no replica of the partition serves nothing of it
  }

  /**
   * A read at the tail. If the config changed while it read, the route is checked again: the partition may have
   * moved away and be being deleted here, and a read that raced that must not be answered.
   *
   * Only under a read lease, checked first: past it, the coordinator may have made another daemon the tail, and
   * writes may be acknowledged without this one. Checking at the start is enough: everything acknowledged before
   * the read began is here by then, and a replica only moves forward.
   */
  read<T>(request: Addressed, work: (replica: Replica) => T | Promise<T>): T | Promise<T> {
    const config = this.config;
    this.options.lease?.check(config?.version);
    const result = this.route(request, false).read(work);
    if (!(result instanceof Promise)) return result; // read within this turn: the config cannot have changed
    return result.then((value) => {
      if (this.config !== config) this.route({ ...request, v: this.config!.version }, false);
      return value;
    });
  }

  /** A batch from a predecessor in a chain. */
  replicate(message: MessageOf<'replicate'>): Promise<null> {
    this.identify();
    checkForwarded(this.config, this.me, message.v);
    const replica = this.replicas.get(idOf(message.spaceId, message.partition));
    if (!replica) checkReplicated(this.config, noRole, 0, message); // throws: nothing of the partition here
    return replica!.receive(message).then(() => null);
  }

  /** A page of a partition this daemon is joining. */
  transfer(message: MessageOf<'transfer'>): Promise<null> {
    this.identify();
    checkForwarded(this.config, this.me, message.v);
    const replica = this.replicas.get(idOf(message.spaceId, message.partition));
    if (!replica) checkTransferred(this.config, noRole, 0, message); // throws: nothing of the partition here
    return replica!.receiveTransfer(message);
  }

  /** Computes the roles again once this daemon's id is known, if the config came before it. */
  private identify(): void {
    const me = this.options.serverId?.();
    if (me !== undefined && me !== this.me && this.config) this.onConfig(this.config, me);
  }

  /** Resolves when a config newer than `version` runs here, or after `timeoutMs`. */
  configAfter(version: number, timeoutMs: number): Promise<void> {
    if ((this.config?.version ?? 0) > version) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.configWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  get frozen(): boolean {
    return this.holding;
  }

  holdBack(admit: () => void, reject: (error: KvError) => void): void {
    if (this.held.length < heldWritesMax) this.held.push(admit);
    else reject(new KvError('UNAVAILABLE', `a backup freeze is holding ${heldWritesMax} writes already`));
  }

  /** Runs `task` now, or after the freeze when one holds writes (work on no single partition: dropping a space). */
  whenNotFrozen<T>(task: () => Promise<T>): Promise<T> {
    if (!this.holding) return task();
    return new Promise<T>((resolve, reject) => this.holdBack(() => void task().then(resolve, reject), reject));
  }

  /** Holds client writes and writing tasks submitted from now on; resolves once everything admitted before is committed and replicated. */
  hold(): Promise<void> {
    this.holding = true;
    return this.idle();
  }

  /** Admits the held work, in order. Returns how much there was. */
  release(): number {
    this.holding = false;
    const held = this.held;
    this.held = [];
    for (const admit of held) admit();
    return held.length;
  }

  /** Resolves when every write admitted so far has been committed (and replicated) or failed. */
  async idle(): Promise<void> {
    await Promise.all([...this.replicas.values()].map((replica) => replica.idle()));
  }

  stopping(): boolean {
    return this.options.stopping?.() ?? false;
  }

  reportDone(spaceId: number, partition: number, source: string): Promise<unknown> {
    return this.options.reportDone?.(spaceId, partition, source) ?? Promise.resolve(null);
  }

  async close(): Promise<void> {
    this.peers.stop();
    await this.chainPeers.closeAll();
    await this.transferPeers.closeAll();
  }

  private readonly spaceNamed = (name: string): SpaceInfo | undefined => this.spacesByName.get(name);
}

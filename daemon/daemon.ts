// A storage daemon: serves the partitions the coordinator assigns to it, from one LevelDB in its data dir.
// Reads go straight to LevelDB, while the daemon holds a read lease; every write goes through the write queue.
import type WebSocket from 'ws';
import type { WebSocketServer } from 'ws';
import { extendedChain, valueBytesMaxOf, type ClusterConfig } from '../shared/config.js';
import { Connection } from '../shared/connection.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { listen } from '../shared/listen.js';
import { scanPageBytesMax, scanPageEntriesMax, shutdownGraceMs } from '../shared/limits.js';
import { daemonPathMismatch, writeTypes, type Message } from '../shared/protocol.js';
import * as attributes from './attributes.js';
import { CoordinatorLink } from './coordinator-link.js';
import { route, routeReplica, type Addressed, type Routed } from './routing.js';
import { Replicator } from './replication.js';
import { Transfers } from './transfer.js';
import { Storage } from './storage.js';
import { dataKey } from '../shared/key-layout.js';
import { WriteQueues, type RequestId, type Write } from './write-queue.js';
import { FreezeKeeper } from './freeze.js';
import { SnapshotKeeper } from './snapshots.js';
import { ReadLease } from './read-lease.js';

export interface DaemonOptions {
  host: string;
  port: number;
  coordinator: string;
  dataDir: string;
  /** LevelDB's write buffer; undefined: LevelDB's default (4 MiB). */
  writeBufferBytes?: number;
  log: Logger;
  /** Called when the coordinator refuses this daemon for good while it runs. */
  onFatal: (error: KvError) => void;
}

export class Daemon {
  private config: ClusterConfig | undefined;
  private server!: WebSocketServer;
  private link!: CoordinatorLink;
  private readonly connections = new Set<Connection>();
  private inflight = 0;
  private stopping = false;
  private readonly writes: WriteQueues;
  private readonly freezes: FreezeKeeper;
  private readonly snapshots: SnapshotKeeper;
  private readonly replicator: Replicator;
  private readonly transfers: Transfers;
  private configWaiters: Array<() => void> = [];
  private readonly lease = new ReadLease();
  address = '';

  private constructor(
    private readonly storage: Storage,
    private readonly options: DaemonOptions,
  ) {
    this.replicator = new Replicator({
      config: () => this.config,
      serverId: () => this.link?.serverId,
      configAfter: (version, timeoutMs) => this.configAfter(version, timeoutMs),
      stopping: () => this.stopping,
      log: options.log,
    });
    this.writes = new WriteQueues(storage, { valueBytesMax: () => valueBytesMaxOf(this.config), nowMs: Date.now }, this.replicator.afterCommit);
    this.transfers = new Transfers(
      {
        config: () => this.config,
        serverId: () => this.link?.serverId,
        stopping: () => this.stopping,
        reportDone: (spaceId, partition, source) => this.link.ask({ t: 'transfer_done', spaceId, partition, source }),
        log: options.log,
      },
      storage,
      this.writes,
    );
    this.freezes = new FreezeKeeper(this.writes, options.log);
    this.snapshots = new SnapshotKeeper(options.dataDir, this.freezes, () => this.link?.identity, options.log);
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const storage = await Storage.open(options.dataDir, options.writeBufferBytes ? { writeBufferBytes: options.writeBufferBytes } : {});
    const daemon = new Daemon(storage, options);
    try {
      await daemon.run();
      return daemon;
    } catch (error) {
      await daemon.stop();
      throw error;
    }
  }

  get serverId(): string | undefined {
    return this.link?.serverId;
  }

  private async run(): Promise<void> {
    const { options, storage } = this;
    const { server, address } = await listen(options.host, options.port, (path) =>
      daemonPathMismatch(path, this.link?.identity?.serverId, this.config?.incarnation),
    );
    this.server = server;
    this.address = address;
    server.on('connection', (socket: WebSocket) => {
      const connection = new Connection(socket, (message, conn) => this.handle(message, conn), 'client');
      this.connections.add(connection);
      connection.onceClosed(() => this.connections.delete(connection));
    });
    options.log.info({ address, port: Number(address.split(':').pop()) }, 'listening');
    this.link = new CoordinatorLink({
      coordinator: options.coordinator,
      address,
      identity: await storage.identity(),
      saveIdentity: (identity) => storage.saveIdentity(identity),
      onConfig: (config) => this.applyConfig(config),
      onRequest: (message, connection) => this.handleCoordinator(message, connection),
      onFatal: options.onFatal,
      lease: this.lease,
      log: options.log,
    });
    await this.link.start();
  }

  private applyConfig(config: ClusterConfig): void {
    const previous = this.config;
    if (previous && config.version <= previous.version) {
      // A new session has acknowledged nothing yet; a tail leaving its chain waits for this daemon's word.
      this.link.ack(previous.version);
      return;
    }
    this.config = config;
    this.freezes.apply(config.freeze);
    this.link.ack(config.version);
    for (const wake of this.configWaiters.splice(0)) wake();
    this.transfers.consider(config);
    this.replicator.onConfig(config);
    if (previous) this.dropMovedPartitions(previous, config);
    this.options.log.debug({ version: config.version }, 'running config');
    const spaceIds = (c: ClusterConfig | undefined) => c?.spaces.map((s) => s.id).join(',');
    if (spaceIds(previous) !== spaceIds(config)) {
      this.dropRemovedSpaces(config).catch((error) =>
        this.options.log.error({ err: error }, 'cannot drop the data of removed spaces'),
      );
    }
  }

  /** Deletes the data of partitions this daemon held under `previous` and no longer holds (moved elsewhere). */
  private dropMovedPartitions(previous: ClusterConfig, config: ClusterConfig): void {
    const me = this.link?.serverId;
    if (!me) return;
    const holds = (c: ClusterConfig, spaceId: number, partition: number) => {
      const p = c.spaces.find((s) => s.id === spaceId)?.partitions[partition];
      return p !== undefined && extendedChain(p).includes(me);
    };
    const live = new Set(config.spaces.map((s) => s.id));
    for (const space of previous.spaces) {
      if (!live.has(space.id)) continue;
      space.partitions.forEach((_, partition) => {
        if (!holds(previous, space.id, partition) || holds(config, space.id, partition)) return;
        this.dropPartition(space.id, partition);
      });
    }
  }

  private dropPartition(spaceId: number, partition: number): void {
    this.writes
        .exclusive(spaceId, partition, () => this.storage.clearPartition(spaceId, partition), { writes: true, held: true })
        .then(() => this.options.log.info({ spaceId, partition }, 'dropped a partition that moved away'))
        .catch((error) => this.options.log.error({ err: error, spaceId, partition }, 'cannot drop a partition that moved away'));
  }

  /** Resolves when a config newer than `version` runs here, or after `timeoutMs`. */
  private configAfter(version: number, timeoutMs: number): Promise<void> {
    if ((this.config?.version ?? 0) > version) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.configWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Space ids are never reused, so data of any id below nextSpaceId that the config lacks is garbage. */
  private async dropRemovedSpaces(config: ClusterConfig): Promise<void> {
    const live = new Set(config.spaces.map((s) => s.id));
    for (const id of await this.storage.spaceIds()) {
      if (id < config.nextSpaceId && !live.has(id)) {
        await this.writes.whenNotFrozen(() => this.storage.dropSpace(id));
        this.options.log.info({ spaceId: id }, 'dropped the data of a removed space');
      }
    }
  }

  /** Answers what can be answered at once (most reads) in this turn; the rest when its promise settles. */
  private handle(message: Message, connection: Connection): void {
    if (!('id' in message) || typeof message.id !== 'number') return;
    const id = message.id;
    let result: unknown;
    try {
      result = this.serve(message);
    } catch (error) {
      connection.fail(id, asKvError(error));
      return;
    }
    if (!(result instanceof Promise)) {
      connection.reply(id, result);
      return;
    }
    this.inflight++;
    result.then(
      (value) => connection.reply(id, value),
      (error) => connection.fail(id, asKvError(error)),
    ).finally(() => this.inflight--);
  }

  /** Requests only the coordinator may make: they arrive on the daemon's own session, never from clients. */
  private handleCoordinator(message: Message, connection: Connection): void {
    if (!('id' in message) || typeof message.id !== 'number') return;
    const id = message.id;
    const work = async (): Promise<unknown> => {
      switch (message.t) {
        case 'prepare':
          return this.snapshots.prepare(message.name);
        case 'quiesce':
          return { quiescedMs: await this.freezes.quiesced(message.freezeId) };
        case 'capture':
          return this.snapshots.capture(message.freezeId, message.name);
        case 'seal':
          return this.snapshots.seal(message.name, message.configVersion);
        case 'release_snapshot':
          return this.snapshots.release(message.name, message.freezeId);
        default:
          throw new KvError('BAD_REQUEST', `the coordinator session does not serve ${message.t}`);
      }
    };
    work().then(
      (result) => connection.reply(id, result),
      (error) => connection.fail(id, asKvError(error)),
    );
  }

  /** A request's answer, or a promise of it; throws a KvError when it is refused. */
  private serve(message: Message): unknown {
    // Refused, not dropped: the client knows it was not applied and may retry elsewhere.
    if (this.stopping) throw new KvError('UNAVAILABLE', 'this daemon is shutting down');
    const serverId = this.link?.serverId;
    const write = writeTypes.has(message.t);
    switch (message.t) {
      case 'get':
        return this.read(message, ({ space, partition }) => this.storage.get(dataKey(space.id, partition, message.key)) ?? null);
      case 'put':
      case 'del':
      case 'put_if_not_exist':
      case 'cond_put':
      case 'atomic_add': {
        const { space, partition } = route(this.config, serverId, message, write);
        return this.writes.submit(space.id, partition, {
          key: dataKey(space.id, partition, message.key),
          apply: writeOf(message),
          rid: requestId(message),
        });
      }
      case 'replicate': {
        const origin = routeReplica(this.config, serverId, message);
        const changes = message.changes.map(([key, value]) => [asBuffer(key), value === null ? undefined : asBuffer(value)] as [Buffer, Buffer | undefined]);
        return this.writes.replicated(message.spaceId, message.partition, changes, origin).then(() => null);
      }
      case 'transfer':
        return this.transfers.receive(message);
      case 'count':
        return this.read(message, ({ space, partition }) => this.storage.count(space.id, partition));
      case 'scan':
        return this.read(message, ({ space, partition }) =>
          this.storage.scan(space.id, partition, message.after, Math.min(message.limit, scanPageEntriesMax), scanPageBytesMax),
        );
      default:
        throw new KvError('BAD_REQUEST', `a daemon does not serve ${message.t}`);
    }
  }

  /**
   * A read at the tail. If the config changed while it read, the route is checked again: the partition may have
   * moved away and be being deleted here, and a read that raced that must not be answered.
   *
   * Only under a read lease: past it, the coordinator may have made another daemon the tail, and writes may be
   * acknowledged without this one. Checking at the start is enough: everything acknowledged before the read began
   * is here by then, and a replica only moves forward.
   */
  private read<T>(request: Addressed, work: (routed: Routed) => T | Promise<T>): T | Promise<T> {
    const config = this.config;
    this.lease.check(config?.version);
    const routed = route(config, this.link?.serverId, request, false);
    // While a daemon joins after this tail, a batch on its way to it is committed here but not yet there. Reading
    // after it (in the partition's queue) means nothing is returned that the joining daemon, the next tail, lacks.
    const joining = routed.space.partitions[routed.partition]?.joining;
    const result = joining
      ? this.writes.exclusive(routed.space.id, routed.partition, async () => work(routed), { writes: false, held: false })
      : work(routed);
    if (!(result instanceof Promise)) return result; // read within this turn: the config cannot have changed
    return result.then((value) => {
      if (this.config !== config) route(this.config, this.link?.serverId, { ...request, v: this.config!.version }, false);
      return value;
    });
  }

  /** Stops accepting, lets in-flight requests finish (bounded), leaves the cluster, closes LevelDB. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.server?.close();
    const deadline = Date.now() + shutdownGraceMs;
    while (this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    this.freezes.stop();
    await this.writes.idle();
    await this.link?.leave();
    for (const connection of this.connections) connection.close(1001, 'daemon shutting down');
    await this.replicator.close();
    await this.transfers.close();
    await this.storage.close();
  }
}

type WriteMessage = Extract<Message, { t: 'put' | 'del' | 'put_if_not_exist' | 'cond_put' | 'atomic_add' }>;

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function requestId(message: WriteMessage): RequestId {
  const session = Buffer.from(message.session, 'hex');
  if (session.length !== 8) throw new KvError('BAD_REQUEST', `session "${message.session}" is not 16 hex digits`);
  return { session, sessionHex: message.session, seq: message.seq, awaiting: message.awaiting };
}

/** Each write request as a transformation of the current value (see attributes.ts for the semantics). */
function writeOf(message: WriteMessage): Write['apply'] {
  switch (message.t) {
    case 'put':
      attributes.checkAttrs(message.attrs);
      return (current) => ({ value: attributes.merge(current, message.attrs), result: null });
    case 'del':
      return (current) => ({ value: undefined, result: current !== undefined });
    case 'put_if_not_exist':
      attributes.checkAttrs(message.attrs);
      return (current) => ({ value: attributes.putIfNotExist(current, message.attrs), result: null });
    case 'cond_put':
      attributes.checkAttrs(message.attrs);
      return (current) => ({ value: attributes.condPut(current, message.expect, message.attrs), result: null });
    case 'atomic_add':
      attributes.checkAttrs(message.deltas);
      return (current) => {
        const value = attributes.atomicAdd(current, message.deltas);
        return { value, result: value };
      };
  }
}

// A storage daemon: serves the partitions the coordinator assigns to it, from one LevelDB in its data dir.
// Each request goes to its partition's replica (replica.ts), which judges it by its role in the partition's chain.
// Reads go straight to LevelDB, while the daemon holds a read lease; every write goes through the replica's queue.
import type WebSocket from 'ws';
import type { WebSocketServer } from 'ws';
import { advertisedAddress } from '../shared/advertise.js';
import { supersedes, valueBytesMaxOf, type ClusterConfig } from '../shared/config.js';
import { Connection } from '../shared/connection.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { WriterBindings } from '../shared/log-writer.js';
import { listen, roleOf } from '../shared/listen.js';
import { checkAllowed } from '../shared/roles.js';
import { peerAddressOf, type TlsSettings } from '../shared/tls.js';
import type { IncomingMessage } from 'node:http';
import { peerPingIntervalMs, peerSilenceMsMax, scanPageBytesMax, scanPageEntriesMax, shutdownGraceMs } from '../shared/limits.js';
import { daemonPathMismatch, type Message } from '../shared/protocol.js';
import * as attributes from './attributes.js';
import { CoordinatorLink } from './coordinator-link.js';
import { parseCoordinators } from '../shared/coordinator-finder.js';
import { Storage } from './storage.js';
import { dataKey } from '../shared/key-layout.js';
import { copiedSnapshot, levelDir } from '../shared/data-dir.js';
import type { RequestId, Write } from './write-queue.js';
import { Replicas } from './replicas.js';
import { FreezeKeeper } from './freeze.js';
import { SnapshotKeeper } from './snapshots.js';
import { ReadLease } from './read-lease.js';
import { DaemonMetrics } from './daemon-metrics.js';
import { registerBacklogMetrics } from './backlog-metrics.js';
import { newRegistry, serveMetrics, type MetricsEndpoint } from '../shared/metrics.js';

export interface DaemonOptions {
  host: string;
  port: number;
  /** The coordinators, HOST:PORT each (in an array or as a comma list): the daemon registers with the leader. */
  coordinator: string | readonly string[];
  /** The address to register instead of the bound one (shared/advertise.ts); undefined: the bound one. */
  advertise?: string | undefined;
  dataDir: string;
  /** LevelDB's write buffer; undefined: LevelDB's default (4 MiB). */
  writeBufferBytes?: number;
  /** Sync every commit to disk before answering (daemon/storage.ts, `durable`); off: commits reach the OS only. */
  durable?: boolean;
  log: Logger;
  /** TLS on: every connection, accepted or made, is TLS with this certificate (shared/tls.ts). */
  tls?: TlsSettings | undefined;
  /** Called when the coordinator refuses this daemon for good while it runs. */
  onFatal: (error: KvError) => void;
  /** Aborted: stop trying to register, undo the start and reject (SIGTERM before the coordinator was reached). */
  abort?: AbortSignal;
  /** Serve Prometheus metrics on this port of `host` (0: any free port); undefined: none. */
  metricsPort?: number | undefined;
}

export class Daemon {
  private config: ClusterConfig | undefined;
  private server!: WebSocketServer;
  private link!: CoordinatorLink;
  private readonly connections = new Set<Connection>();
  private inflight = 0;
  private stopping = false;
  private readonly lease = new ReadLease();
  private readonly replicas: Replicas;
  private readonly freezes: FreezeKeeper;
  private readonly snapshots: SnapshotKeeper;
  private readonly metrics: DaemonMetrics | undefined;
  private metricsEndpoint: MetricsEndpoint | undefined;
  address = '';
  /** What it registers, and clients and other daemons dial: --advertise, else `address`. */
  advertised = '';

  private constructor(
    private readonly storage: Storage,
    private readonly options: DaemonOptions,
  ) {
    this.replicas = new Replicas({
      storage,
      env: { valueBytesMax: () => valueBytesMaxOf(this.config), nowMs: Date.now },
      log: options.log,
      lease: this.lease,
      serverId: () => this.link?.serverId,
      stopping: () => this.stopping,
      reportDone: (spaceId, partition, source) => this.link.ask({ t: 'transfer_done', spaceId, partition, source }),
      tellPeer: (serverId, reachable) => this.link.ask({ t: 'peer_unreachable', serverId, reachable }),
      tls: options.tls,
    });
    const metrics = options.metricsPort === undefined ? undefined : new DaemonMetrics(newRegistry('daemon'), () => this.snapshots.list().length, levelDir(options.dataDir), () => ({ config: this.config, serverId: this.link?.serverId }));
    this.metrics = metrics;
    if (metrics) {
      registerBacklogMetrics(metrics.registry, () => this.replicas.all(), () => this.config);
      storage.onCommit = (operations, synced, seconds) => metrics.committed(operations, synced, seconds);
    }
    this.freezes = new FreezeKeeper(this.replicas, options.log, metrics && {
      frozen: () => metrics.freezes.inc(),
      thawed: (heldMs) => metrics.frozenSeconds.inc(heldMs / 1000),
    });
    this.snapshots = new SnapshotKeeper(options.dataDir, this.freezes, () => this.link?.identity, options.log);
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const storage = await Storage.open(options.dataDir, options.writeBufferBytes ? { writeBufferBytes: options.writeBufferBytes } : {}, options.durable ?? false);
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

  get clusterId(): string | undefined {
    return this.link?.identity?.clusterId;
  }

  private async run(): Promise<void> {
    const { options, storage } = this;
    const { server, address } = await listen(
      options.host,
      options.port,
      (path) => daemonPathMismatch(path, this.link?.identity?.serverId, this.config?.incarnation),
      options.tls,
      (peer, why) => options.log.warn({ peer, why }, 'refused a connection: no valid credential'),
    );
    this.server = server;
    this.address = address;
    server.on('connection', (socket: WebSocket, request: IncomingMessage) => {
      const role = roleOf(request, options.tls);
      if (role === null) return socket.terminate();
      const connection = new Connection(socket, (message, conn) => this.handle(message, conn), peerAddressOf(request), role);
      // A client or predecessor whose host died sends no FIN: its socket, and what it holds, go after this silence.
      connection.watch(peerPingIntervalMs, peerSilenceMsMax);
      this.connections.add(connection);
      connection.onceClosed(() => this.connections.delete(connection));
    });
    // Every line from here on says which daemon wrote it (shared/log-writer.ts).
    options.log.setBindings({ port: Number(address.split(':').pop()) } satisfies WriterBindings);
    const advertised = (this.advertised = advertisedAddress(address, options.advertise));
    options.log.info({ address, ...(advertised !== address && { advertised }), durable: storage.durable }, 'listening');
    if (this.metrics && options.metricsPort !== undefined) {
      this.metricsEndpoint = await serveMetrics(options.host, options.metricsPort, this.metrics.registry);
      options.log.info({ address: this.metricsEndpoint.address }, 'metrics listening');
    }
    const identity = await storage.identity();
    if (identity) options.log.setBindings({ serverId: identity.serverId } satisfies WriterBindings);
    const copied = copiedSnapshot(options.dataDir);
    if (copied && copied.serverId !== identity?.serverId) {
      throw new KvError('DATA_DIR_INVALID', `${options.dataDir}: its manifest.json is server ${copied.serverId}'s, but its database is ${identity ? `server ${identity.serverId}'s` : 'new'}`);
    }
    this.link = new CoordinatorLink({
      coordinators: parseCoordinators(options.coordinator),
      address: advertised,
      identity,
      copyOf: copied && { name: copied.name, configVersion: copied.configVersion },
      saveIdentity: (given) => {
        options.log.setBindings({ serverId: given.serverId } satisfies WriterBindings);
        return storage.saveIdentity(given);
      },
      onConfig: (config) => this.applyConfig(config),
      onRequest: (message, connection) => this.handleCoordinator(message, connection),
      onFatal: options.onFatal,
      lease: this.lease,
      log: options.log,
      tls: options.tls,
    });
    await this.link.start(options.abort);
  }

  private applyConfig(config: ClusterConfig): void {
    const previous = this.config;
    if (previous && !supersedes(config, previous)) {
      // Not newer, or from a deposed coordinator leader (an older epoch).
      // A new session has acknowledged nothing yet; a tail leaving its chain waits for this daemon's word.
      this.link.ack(previous.version);
      return;
    }
    this.config = config;
    this.metrics?.running(config);
    this.freezes.apply(config.freeze);
    this.link.ack(config.version);
    this.replicas.onConfig(config, this.link.serverId);
    this.options.log.debug({ version: config.version }, 'running config');
    const spaceIds = (c: ClusterConfig | undefined) => c?.spaces.map((s) => s.id).join(',');
    if (spaceIds(previous) !== spaceIds(config)) {
      this.dropRemovedSpaces(config).catch((error) =>
        this.options.log.error({ err: error }, 'cannot drop the data of removed spaces'),
      );
    }
  }

  /** Space ids are never reused, so data of any id below nextSpaceId that the config lacks is garbage. */
  private async dropRemovedSpaces(config: ClusterConfig): Promise<void> {
    const live = new Set(config.spaces.map((s) => s.id));
    for (const id of await this.storage.spaceIds()) {
      if (id < config.nextSpaceId && !live.has(id)) {
        await this.replicas.whenNotFrozen(() => this.storage.dropSpace(id));
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
      checkAllowed('daemon', connection.role, message.t);
    } catch (error) {
      this.options.log.warn({ peer: connection.peer, role: connection.role, t: message.t }, 'refused a request its role may not make');
      connection.fail(id, asKvError(error));
      return;
    }
    if (this.metrics) return this.handleCounted(message, id, connection, this.metrics);
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

  /** `handle` with every answer counted and timed (--metrics-port); apart, so a daemon without metrics pays nothing. */
  private handleCounted(message: Message, id: number, connection: Connection, metrics: DaemonMetrics): void {
    const readAt = performance.now();
    const answer = (value: unknown) => {
      connection.reply(id, value);
      metrics.answered(message.t, 'ok', (performance.now() - readAt) / 1000);
    };
    const refuse = (error: unknown) => {
      const refusal = asKvError(error);
      connection.fail(id, refusal);
      metrics.answered(message.t, refusal.code, (performance.now() - readAt) / 1000);
    };
    let result: unknown;
    try {
      result = this.serve(message);
    } catch (error) {
      refuse(error);
      return;
    }
    if (!(result instanceof Promise)) {
      answer(result);
      return;
    }
    this.inflight++;
    result.then(answer, refuse).finally(() => this.inflight--);
  }

  /** Requests only the coordinator may make: they arrive on the daemon's own session, never from clients. */
  private handleCoordinator(message: Message, connection: Connection): void {
    if (!('id' in message) || typeof message.id !== 'number') return;
    const id = message.id;
    const work = async (): Promise<unknown> => {
      if ((message.t === 'prepare' || message.t === 'capture' || message.t === 'seal') && connection.closed) {
        // Its attempt has failed (the coordinator asks on its current session): doing it would only leave debris.
        this.options.log.warn({ request: message.t, backup: message.name }, 'dropped a backup request from a coordinator session that has closed');
        throw new KvError('UNAVAILABLE', `${message.t} came on a coordinator session that has closed`);
      }
      switch (message.t) {
        case 'prepare':
          return this.snapshots.prepare(message.name, message.owner ?? null, connection);
        case 'quiesce':
          return { quiescedMs: await this.freezes.quiesced(message.freezeId) };
        case 'capture':
          return this.snapshots.capture(message.freezeId, message.name);
        case 'seal':
          return this.snapshots.seal(message.name, message.configVersion, message.owner);
        case 'snapshots':
          return this.snapshots.list();
        case 'release_snapshot':
          return this.snapshots.release(message.name, message.freezeId);
        case 'revoke_lease':
          this.lease.revoke();
          this.options.log.warn('gave up the read lease: another daemon reported this one unreachable');
          return null;
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
    switch (message.t) {
      case 'get':
        return this.replicas.read(message, (r) => this.storage.getPacked(dataKey(r.spaceId, r.partition, message.key)) ?? null);
      case 'put':
      case 'del':
      case 'put_if_not_exist':
      case 'cond_put':
      case 'atomic_add': {
        const replica = this.replicas.route(message, true);
        return replica.submit({
          key: dataKey(replica.spaceId, replica.partition, message.key),
          apply: writeOf(message),
          rid: requestId(message),
        });
      }
      case 'replicate':
        return this.replicas.replicate(message);
      case 'transfer':
        return this.replicas.transfer(message);
      case 'count':
        return this.replicas.read(message, (r) => this.storage.count(r.spaceId, r.partition));
      case 'scan':
        return this.replicas.read(message, (r) =>
          this.storage.scan(r.spaceId, r.partition, message.after, Math.min(message.limit, scanPageEntriesMax), scanPageBytesMax),
        );
      default:
        throw new KvError('BAD_REQUEST', `a daemon does not serve ${message.t}`);
    }
  }

  /** Stops accepting, lets in-flight requests finish (bounded), leaves the cluster, closes LevelDB. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.server?.close();
    const deadline = Date.now() + shutdownGraceMs;
    while (this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    this.freezes.stop();
    await this.replicas.idle();
    await this.link?.leave();
    for (const connection of this.connections) connection.close(1001, 'daemon shutting down');
    await this.replicas.close();
    await this.storage.close();
    await this.metricsEndpoint?.close();
  }
}

type WriteMessage = Extract<Message, { t: 'put' | 'del' | 'put_if_not_exist' | 'cond_put' | 'atomic_add' }>;

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

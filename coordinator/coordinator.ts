// The running coordinator: the one owner of the cluster config. Every change goes through `change()`, which
// applies a pure transition from cluster.ts, persists the result, and only then pushes it to daemons and
// subscribed clients. Changes run one at a time, in arrival order.
import type { WebSocketServer } from 'ws';
import type WebSocket from 'ws';
import type { ClusterConfig } from '../shared/config.js';
import { Connection } from '../shared/connection.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { WriterBindings } from '../shared/log-writer.js';
import { listen, roleOf } from '../shared/listen.js';
import { checkAllowed } from '../shared/roles.js';
import { peerAddressOf, type TlsSettings } from '../shared/tls.js';
import type { IncomingMessage } from 'node:http';
import { advertisedAddress } from '../shared/advertise.js';
import type { Message, MessageOf, RequestOf, RequestType, Results } from '../shared/protocol.js';
import { randomUUID } from 'node:crypto';
import { newSessionId } from '../shared/ids.js';
import { backupLockMsDefault, coordinatorPingIntervalMs, coordinatorSilenceMsMax, readLeaseClockRateMargin, readLeaseMarginMs, snapshotReleaseMsMax } from '../shared/limits.js';
import { runBackup, type BackupHost } from './backup.js';
import { BackupLockKeeper } from './backup-lock.js';
import { SnapshotDebris } from './snapshot-debris.js';
import { place, unblocksLeaving } from './placement.js';
import { CutReports } from './cut-reports.js';
import { awaitedServers, isSettled } from './settle.js';
import * as cluster from './cluster.js';
import { CoordinatorStore } from './store.js';
import { configChanges } from './config-changes.js';
import { decodeState } from '../shared/state-file.js';
import { readFileSync } from 'node:fs';

export interface CoordinatorOptions {
  host: string;
  port: number;
  /** The address daemons and clients dial, HOST or HOST:PORT (the bound port by default): needed on a wildcard host. */
  advertise?: string | undefined;
  dataDir: string;
  /** A coordinator.bin to start from; only into an empty data dir. */
  restoreFrom?: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** The largest stored value, for the whole cluster; undefined: keep the config's. */
  valueBytesMax?: number;
  log: Logger;
  /** TLS on: listen with this certificate and take only clients with one of the cluster CA (shared/tls.ts). */
  tls?: TlsSettings | undefined;
  /** Testing only: how long a backup stalls after freezing (to kill things mid-freeze). */
  faultStallAfterFreezeMs?: number;
}

interface DaemonSession {
  serverId: string;
  connection: Connection;
  /** performance.now() when the daemon last registered or asked for a read lease. */
  lastSeen: number;
  ackedVersion: number;
  /** Cut off (cut-reports.ts) and it gave up its lease on this session: refused leases keep it alive, nothing more. */
  leaseFree?: boolean;
}

export class Coordinator {
  private config!: ClusterConfig;
  private changes: Promise<unknown> = Promise.resolve();
  private readonly sessions = new Map<string, DaemonSession>();
  private readonly subscribers = new Set<Connection>();
  private readonly connections = new Set<Connection>();
  private server!: WebSocketServer;
  private heartbeat!: NodeJS.Timeout;
  private stopping = false;
  /** False after a start until the daemons that were serving are back (settle.ts): they keep their place meanwhile. */
  private settled = false;
  private settle!: NodeJS.Timeout;
  /** The servers available in the state this coordinator started from. */
  private awaited: ReadonlySet<string> = new Set();
  private listeningSince = 0;
  /** When checkHeartbeats last ran: a check that runs late (this process stalled) declares nobody dead. */
  private lastCheck = 0;
  private readonly backupLock = new BackupLockKeeper(0);
  private readonly debris: SnapshotDebris;
  private readonly cuts = new CutReports();
  /** The daemons taken out of chains because others cannot reach them, with why: derived from `cuts`. */
  private cutOff = new Map<string, string>();
  /** Where this coordinator listens. */
  bound = '';
  /** What daemons and clients dial: --advertise, else where it listens. */
  address = '';

  private constructor(
    private readonly store: CoordinatorStore,
    private readonly options: CoordinatorOptions,
  ) {
    this.debris = new SnapshotDebris((serverId, request, timeoutMs) => this.ask(serverId, request, timeoutMs), options.log);
  }

  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    const leaseMs = options.heartbeatTimeoutMs * (1 - readLeaseClockRateMargin) - readLeaseMarginMs;
    if (!(options.heartbeatIntervalMs > 0) || !(leaseMs > options.heartbeatIntervalMs)) {
      throw new KvError(
        'BAD_REQUEST',
        `--heartbeat-timeout-ms ${options.heartbeatTimeoutMs} gives daemons read leases of ${Math.round(leaseMs)} ms, which must outlast ` +
          `--heartbeat-interval-ms ${options.heartbeatIntervalMs} (the time between renewals); raise the timeout or lower the interval`,
      );
    }
    const store = await CoordinatorStore.open(options.dataDir);
    const coordinator = new Coordinator(store, options);
    try {
      await coordinator.loadState();
      // Listen before persisting: a start that cannot listen (port in use) leaves the data dir as it found it,
      // so a failed --restore can be run again. Changes that arrive meanwhile wait for the save.
      await coordinator.listen();
      coordinator.changes = store.save(coordinator.config);
      await coordinator.changes;
      const { bound: address, address: advertised } = coordinator;
      options.log.info({ address, ...(advertised !== address && { advertised }) }, 'listening');
      return coordinator;
    } catch (error) {
      clearInterval(coordinator.heartbeat);
      coordinator.server?.close();
      await store.close();
      throw error;
    }
  }

  get current(): ClusterConfig {
    return this.config;
  }

  get clusterId(): string {
    return this.config.clusterId;
  }

  private async loadState(): Promise<void> {
    const { log, restoreFrom, dataDir } = this.options;
    const stored = await this.store.load();
    if (restoreFrom !== undefined) {
      if (stored) {
        throw new KvError(
          'DATA_DIR_INVALID',
          `${dataDir} already holds cluster ${stored.clusterId}; restore into an empty --data dir`,
        );
      }
      let bytes: Buffer;
      try {
        bytes = readFileSync(restoreFrom);
      } catch (error) {
        throw new KvError('BAD_REQUEST', `cannot read ${restoreFrom}: ${(error as Error).message}`);
      }
      const saved = decodeState(bytes, restoreFrom);
      this.awaited = awaitedServers(saved);
      this.config = cluster.restoredCluster(saved);
      log.info({ clusterId: this.config.clusterId, version: this.config.version, from: restoreFrom }, 'restored');
    } else if (stored) {
      // Sessions did not survive the restart: every daemon must register again. A freeze did not either: the
      // backup that set it is gone, and daemons have thawed by their lease.
      this.awaited = awaitedServers(stored);
      this.config = stored.servers.reduce(
        (config, s) => (s.state === 'available' ? cluster.setServerState(config, s.id, 'not_available') : config),
        cluster.thaw(stored),
      );
      log.info({ clusterId: this.config.clusterId, version: this.config.version }, 'loaded cluster');
    } else {
      this.config = cluster.newCluster();
      log.info({ clusterId: this.config.clusterId }, 'created cluster');
    }
    if (this.options.valueBytesMax !== undefined) this.config = cluster.setValueBytesMax(this.config, this.options.valueBytesMax);
  }

  private async listen(): Promise<void> {
    const { log, tls } = this.options;
    const { server, address } = await listen(this.options.host, this.options.port, undefined, tls, (peer, why) =>
      log.warn({ peer, why }, 'refused a connection: no valid credential'));
    this.server = server;
    this.bound = address;
    this.address = advertisedAddress(address, this.options.advertise);
    // Every line from here on says it is this coordinator's (shared/log-writer.ts).
    this.options.log.setBindings({ port: Number(address.split(':').pop()) } satisfies WriterBindings);
    server.on('connection', (socket: WebSocket, request: IncomingMessage) => this.accept(socket, request));
    this.listeningSince = this.lastCheck = performance.now();
    this.heartbeat = setInterval(() => this.checkHeartbeats(), this.options.heartbeatIntervalMs);
    this.settleWhenAllBack();
    this.settle = setTimeout(() => this.settleNow(), this.options.heartbeatTimeoutMs);
  }

  private accept(socket: WebSocket, request: IncomingMessage): void {
    const role = roleOf(request, this.options.tls);
    if (role === null) return socket.terminate();
    const connection = new Connection(socket, (message, conn) => this.handle(message, conn), peerAddressOf(request), role);
    // A subscriber or tool whose host died sends no FIN; a daemon's session is judged by its heartbeats as well.
    connection.watch(coordinatorPingIntervalMs, coordinatorSilenceMsMax);
    this.connections.add(connection);
    connection.onceClosed(() => {
      this.connections.delete(connection);
      this.subscribers.delete(connection);
      // A daemon whose session closed keeps its place until its read lease has surely run out: the close may be
      // seen here long before the daemon sees it, and meanwhile it may answer reads as a tail. checkHeartbeats
      // ends the session then, unless the daemon registers again first.
      const session = this.sessionOf(connection);
      if (session && !this.stopping) this.options.log.info({ serverId: session.serverId }, 'daemon session closed; it keeps its place until its lease has run out');
    });
  }

  /** Settled: every daemon that was serving is back (always so for a new cluster), or the grace time is over. */
  private settleWhenAllBack(): void {
    if (!this.settled && isSettled(this.config, this.awaited, performance.now() - this.listeningSince, this.options.heartbeatTimeoutMs)) this.settleNow();
  }

  private settleNow(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.settle);
    // A no-op change runs placement: daemons that did not come back now leave their chains.
    this.change((c) => c).catch((error) => this.options.log.error({ err: error }, 'cannot settle the placement'));
  }

  /** Runs one change at a time: transition, persist, publish. */
  private change(transition: (config: ClusterConfig) => ClusterConfig): Promise<ClusterConfig> {
    const run = async () => {
      let next = transition(this.config);
      const version = next === this.config ? next.version + 1 : next.version;
      const acked = new Map([...this.sessions.values()].map((s) => [s.serverId, s.ackedVersion]));
      const placed = place(next, { settled: this.settled, version, acked });
      if (placed !== next) next = { ...placed, version };
      if (next === this.config) return next;
      await this.store.save(next);
      if (this.options.log.isLevelEnabled('debug')) {
        for (const change of configChanges(this.config, next)) this.options.log.debug({ version: next.version, ...change }, 'config change');
      }
      this.config = next;
      this.publish();
      return next;
    };
    const result = this.changes.then(run, run);
    this.changes = result.catch(() => {});
    return result;
  }

  private publish(): void {
    const push: Message = { t: 'config', config: this.config };
    for (const session of this.sessions.values()) session.connection.send(push);
    for (const subscriber of this.subscribers) subscriber.send(push);
    this.options.log.info({ version: this.config.version }, 'config published');
  }

  private handle(message: Message, connection: Connection): void {
    try {
      checkAllowed('coordinator', connection.role, message.t);
    } catch (error) {
      const refusal = asKvError(error);
      this.options.log.warn({ peer: connection.peer, role: connection.role, t: message.t }, 'refused a request its role may not make');
      if ('id' in message && typeof message.id === 'number') connection.fail(message.id, refusal);
      return;
    }
    const answer = (id: number, work: Promise<unknown>) =>
      work.then(
        (result) => connection.reply(id, result),
        (error) => connection.fail(id, asKvError(error)),
      );
    switch (message.t) {
      case 'register':
        return void answer(message.id, this.register(message, connection));
      case 'leave':
        return void answer(message.id, this.leave(connection));
      case 'config_ack': {
        const session = this.sessionOf(connection);
        if (!session) return;
        session.ackedVersion = Math.max(session.ackedVersion, message.version);
        // A member leaving a chain waits for this: placement lets it go now.
        if (unblocksLeaving(this.config, session.serverId, session.ackedVersion)) {
          this.change((c) => c).catch((error) => this.options.log.error({ err: error }, 'cannot place after an acknowledgement'));
        }
        return;
      }
      case 'open_session':
        // 64 random bits: unique without any state to keep here, across restarts and coordinators alike.
        return void answer(message.id, Promise.resolve({ session: newSessionId() }));
      case 'lease': {
        const session = this.sessionOf(connection);
        if (!session) return connection.fail(message.id, new KvError('UNAVAILABLE', 'only a registered daemon holds a read lease; register first'));
        const cutOff = this.cutOff.get(session.serverId);
        if (cutOff !== undefined) {
          // Alive, but granted nothing: once it has given its lease up, it is kept as a session, not as a member.
          if (session.leaseFree) session.lastSeen = performance.now();
          return connection.fail(message.id, new KvError('CUT_OFF', `no read lease while another daemon cannot reach this one (${cutOff})`));
        }
        // The heartbeat. The config pushes this session is owed went out on this connection before this answer.
        session.lastSeen = performance.now();
        const { heartbeatTimeoutMs: timeoutMs, heartbeatIntervalMs: intervalMs } = this.options;
        return connection.reply(message.id, { version: this.config.version, timeoutMs, intervalMs });
      }
      case 'peer_unreachable': {
        const session = this.sessionOf(connection);
        if (!session) return connection.fail(message.id, new KvError('BAD_REQUEST', 'only a registered daemon reports peers'));
        if (this.cuts.report(session.serverId, message.serverId, message.reachable, performance.now())) {
          this.options.log.warn({ reporter: session.serverId, peer: message.serverId, reachable: message.reachable }, message.reachable ? 'a daemon reaches another again' : 'a daemon cannot reach another');
        }
        // A renewal too: whether a daemon may be spared can change with the chains (cut-reports.ts).
        this.reconcileCuts();
        return connection.reply(message.id, null);
      }
      case 'leader':
        return connection.reply(message.id, { leading: true, leader: this.address, epoch: this.config.epoch ?? 0 });
      case 'get_config':
        return void answer(message.id, Promise.resolve(this.config));
      case 'subscribe':
        this.subscribers.add(connection);
        return void answer(message.id, Promise.resolve(this.config));
      case 'add_space':
        return void answer(
          message.id,
          this.change((c) => cluster.addSpace(c, message.name, message.partitions, message.tolerate)),
        );
      case 'rm_space':
        return void answer(message.id, this.change((c) => cluster.rmSpace(c, message.name)));
      case 'set_read_only':
        return void answer(message.id, this.change((c) => cluster.setReadOnly(c, message.readOnly)));
      case 'transfer_done': {
        const session = this.sessionOf(connection);
        if (!session) return connection.fail(message.id, new KvError('BAD_REQUEST', 'only a registered daemon reports transfers'));
        return void answer(message.id, this.change((c) => cluster.promote(c, message.spaceId, message.partition, session.serverId, message.source)));
      }
      case 'server_forget':
        if (!this.settled) {
          // Its chains would change before every lease the previous coordinator process granted has run out.
          return connection.fail(message.id, new KvError('UNAVAILABLE', 'the coordinator started moments ago and waits for daemons to register again; try again in a few seconds'));
        }
        return void answer(message.id, this.change((c) => cluster.forgetServer(c, message.serverId)));
      case 'status':
        return void answer(message.id, Promise.resolve(this.status()));
      case 'backup':
        return void answer(message.id, this.backup(message));
      case 'backup_lock':
        return void answer(message.id, Promise.resolve().then(() =>
          this.backupLock.acquire(message.name, message.owner, message.token, message.ttlMs, message.renew)));
      case 'backup_unlock':
        this.backupLock.release(message.token);
        return void answer(message.id, Promise.resolve(null));
      case 'backup_release':
        return void answer(message.id, this.releaseSnapshots(message.name));
      case 'list_snapshots':
        return void answer(message.id, this.listSnapshots());
      default:
        if ('id' in message && typeof message.id === 'number') {
          connection.fail(message.id, new KvError('BAD_REQUEST', `the coordinator does not serve ${message.t}`));
        }
    }
  }

  private async register(message: MessageOf<'register'>, connection: Connection) {
    // A daemon whose data is not this incarnation's is told so, even while the server's own daemon is connected.
    try {
      cluster.checkDataOf(this.config, message);
    } catch (error) {
      this.options.log.warn({ serverId: message.serverId, address: message.address, code: asKvError(error).code, err: asKvError(error).message }, 'refused a daemon');
      throw error;
    }
    const live = message.serverId === null ? undefined : this.sessions.get(message.serverId);
    // A session whose connection closed is replaced: the daemon reconnected (or one with a copy of its data dir
    // registers once the original is gone: the same risk as before sessions outlived their connections).
    if (live && live.connection !== connection && !live.connection.closed) {
      throw new KvError(
        'SERVER_ID_IN_USE',
        `server ${message.serverId} is already connected from ${live.connection.peer}; ` +
          'another process runs with a copy of this data dir, or the old session has not timed out yet',
      );
    }
    // The session is claimed before the change is persisted, so the closed one it replaces cannot time out
    // meanwhile (declaring the daemon dead just as it came back). If this connection closes meanwhile, its session
    // times out like any other: the daemon is marked available, so it must have a session that can lapse.
    const claim = (serverId: string) => this.sessions.set(serverId, { serverId, connection, lastSeen: performance.now(), ackedVersion: 0 });
    if (message.serverId !== null) claim(message.serverId);
    let serverId = '';
    let config: ClusterConfig;
    // A new process where this coordinator still keeps the old one's place (its session closed, its lease not yet
    // run out) must leave its chains. Not after a coordinator restart, when every daemon registers anew: a whole
    // cluster started again keeps its chains.
    const registration = { ...message, fresh: message.fresh === true && live !== undefined };
    try {
      config = await this.change((c) => {
        const result = cluster.registerServer(c, registration);
        serverId = result.serverId;
        // Cut off still: registered, so it follows the config, but no member until the cut heals.
        return this.cutOff.has(serverId) ? cluster.withServerState(result.config, serverId, 'not_available') : result.config;
      });
    } catch (error) {
      if (message.serverId !== null && this.sessions.get(message.serverId)?.connection === connection) {
        if (live) this.sessions.set(message.serverId, live);
        else this.sessions.delete(message.serverId);
      }
      throw error;
    }
    if (message.serverId === null) claim(serverId);
    const answer = { serverId, clusterId: config.clusterId, incarnation: config.incarnation };
    if (connection.closed) return answer;
    Object.assign(connection, { peer: `server ${serverId} (${message.address})` });
    this.options.log.info({ serverId, address: message.address, version: config.version }, 'daemon registered');
    this.settleWhenAllBack();
    connection.send({ t: 'config', config: this.config });
    this.debris.onRegistered(serverId);
    if (this.cutOff.has(serverId)) this.takeOut(serverId);
    return answer;
  }

  private status() {
    const lock = this.backupLock.current;
    const acked = Object.fromEntries([...this.sessions.values()].map((s) => [s.serverId, s.ackedVersion]));
    const visible = lock && { name: lock.name, owner: lock.owner, startedAt: lock.startedAt, expiresAt: lock.expiresAt };
    return { config: this.config, lock: visible ?? null, acked, cutOff: Object.fromEntries(this.cutOff), cuts: this.cuts.list() };
  }

  /** Runs a backup under the lock: the caller's (backup-manager holds one across its copy) or one of its own. */
  private async backup(request: MessageOf<'backup'>) {
    const ownLock = request.lockToken === null ? randomUUID() : undefined;
    if (ownLock) this.backupLock.acquire(request.name, request.owner, ownLock, request.deadlineMs + backupLockMsDefault);
    else this.backupLock.check(request.lockToken!);
    const host: BackupHost = {
      config: () => this.config,
      change: (transition) => this.change(transition),
      ask: (serverId, req, timeoutMs) => this.ask(serverId, req, timeoutMs),
      owe: (serverId, name, freezeId) => this.debris.owe(serverId, name, freezeId),
      log: this.options.log,
      ...(this.options.faultStallAfterFreezeMs ? { stallAfterFreezeMs: this.options.faultStallAfterFreezeMs } : {}),
    };
    try {
      const connected = this.config.servers.filter((s) => this.sessions.has(s.id)).map((s) => s.id);
      return await this.debris.duringBackup(connected, () => runBackup(request, host));
    } catch (error) {
      const kvError = asKvError(error);
      // A refused request (a name taken on a daemon) stays what it is, so the caller can tell it from a failure;
      // the code is the contract, so it is not repeated inside the message.
      if (kvError.code === 'BACKUP_FAILED' || kvError.code === 'BACKUP_IN_PROGRESS' || kvError.code === 'BAD_REQUEST') throw kvError;
      throw new KvError('BACKUP_FAILED', `backup ${request.name} failed: ${kvError.message}`);
    } finally {
      if (ownLock) this.backupLock.release(ownLock);
    }
  }

  /** Asks every connected daemon to delete snapshot `name`. */
  private async releaseSnapshots(name: string) {
    return Promise.all(
      this.config.servers.map(async (server) => {
        try {
          return { serverId: server.id, released: await this.ask(server.id, { t: 'release_snapshot', name, freezeId: null }, snapshotReleaseMsMax) };
        } catch (error) {
          return { serverId: server.id, released: false, error: asKvError(error).message };
        }
      }),
    );
  }

  /** Every daemon's snapshots; a daemon that cannot answer is listed with why. */
  private async listSnapshots() {
    return Promise.all(
      this.config.servers.map(async (server) => {
        try {
          return { serverId: server.id, snapshots: await this.ask(server.id, { t: 'snapshots' }, snapshotReleaseMsMax) };
        } catch (error) {
          return { serverId: server.id, snapshots: [], error: asKvError(error).message };
        }
      }),
    );
  }

  /** A request to a daemon over its session. */
  private ask<T extends RequestType>(serverId: string, request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]> {
    const session = this.sessions.get(serverId);
    if (!session) return Promise.reject(new KvError('UNAVAILABLE', `server ${serverId} is not connected`));
    return session.connection.request(request, timeoutMs);
  }

  private async leave(connection: Connection): Promise<null> {
    const session = this.sessionOf(connection);
    if (session) await this.endSession(session, 'shutdown', 'daemon shut down');
    return null;
  }

  private endSession(session: DaemonSession, state: 'not_available' | 'shutdown', why: string): Promise<unknown> {
    if (this.stopping || this.sessions.get(session.serverId) !== session) return Promise.resolve();
    this.sessions.delete(session.serverId);
    this.options.log.info({ serverId: session.serverId, state, why }, 'daemon session ended');
    if (this.cuts.forgetReporter(session.serverId)) this.reconcileCuts();
    return this.change((c) => cluster.setServerState(c, session.serverId, state)).catch((error) =>
      this.options.log.error({ err: error, serverId: session.serverId }, 'cannot record the daemon state'),
    );
  }

  private sessionOf(connection: Connection): DaemonSession | undefined {
    for (const session of this.sessions.values()) if (session.connection === connection) return session;
    return undefined;
  }

  /**
   * Declares dead the daemons not heard from for the heartbeat timeout: only then may their partitions go to
   * others, as their read leases (counted from before they asked) have run out.
   */
  private checkHeartbeats(): void {
    const now = performance.now();
    const late = now - this.lastCheck > 2 * this.options.heartbeatIntervalMs;
    this.lastCheck = now;
    // After a stall here, lease requests that arrived meanwhile are still unread: they get a turn first.
    if (late) return;
    if (this.cuts.expire(now)) this.reconcileCuts();
    for (const session of this.sessions.values()) {
      if (now - session.lastSeen > this.options.heartbeatTimeoutMs) {
        const why = session.connection.closed ? 'session closed, lease run out' : 'heartbeat timeout';
        if (!session.connection.closed) this.options.log.warn({ serverId: session.serverId }, 'daemon missed its heartbeats');
        session.connection.socket.terminate();
        void this.endSession(session, 'not_available', why);
      }
    }
  }

  /** Takes out of chains, or back, the daemons the cut reports now name (cut-reports.ts). */
  private reconcileCuts(): void {
    const previous = this.cutOff;
    const next = this.cuts.cutOff(this.config, new Set(previous.keys()));
    this.cutOff = next;
    for (const [serverId, why] of next) {
      if (previous.has(serverId)) continue;
      this.options.log.warn({ serverId, why }, 'taking a daemon out of its chains: another cannot reach it');
      this.takeOut(serverId);
    }
    for (const serverId of previous.keys()) {
      if (next.has(serverId)) continue;
      const session = this.sessions.get(serverId);
      this.options.log.info({ serverId }, 'a daemon cut off is reached again; it may serve again');
      if (!session) continue; // it registers anew, and is available then
      session.leaseFree = false;
      this.change((c) => cluster.setServerState(c, serverId, 'available')).catch((error) =>
        this.options.log.error({ err: error, serverId }, 'cannot record the daemon state'),
      );
    }
  }

  /**
   * Has a cut-off daemon give up its read lease, then marks it not available, so placement takes it out of its
   * chains at once rather than after its lease runs out. If it does not answer, its leases are refused from now
   * on (lease above), so it is declared dead once its last one has run out, as any daemon gone silent.
   */
  private takeOut(serverId: string): void {
    const session = this.sessions.get(serverId);
    if (!session) return;
    this.ask(serverId, { t: 'revoke_lease' }, this.options.heartbeatTimeoutMs).then(
      () => {
        if (this.sessions.get(serverId) !== session || !this.cutOff.has(serverId)) return;
        session.leaseFree = true;
        session.lastSeen = performance.now();
        return this.change((c) => cluster.setServerState(c, serverId, 'not_available'));
      },
      (error) => this.options.log.warn({ serverId, err: asKvError(error).message }, 'a cut-off daemon did not give up its lease; it is dropped once the lease runs out'),
    ).catch((error) => this.options.log.error({ err: error, serverId }, 'cannot record the daemon state'));
  }

  /** Stops accepting, lets the last change finish, closes the store. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.settle);
    this.server.close();
    for (const connection of this.connections) connection.close(1001, 'coordinator shutting down');
    await this.changes;
    await this.store.close();
  }
}

// The coordinator process: it listens, campaigns for leadership of its config store (config-store.ts), and while
// it leads, serves through one term of three parts: the config log (config-log.ts: change → place → persist →
// publish), the daemon sessions and failure detector (daemon-sessions.ts), and the backup service
// (backup-service.ts). A follower answers who leads and refuses the rest with NOT_LEADER; a leader that steps down
// closes every connection (its clients and daemons find the new leader) and campaigns again.
import type { WebSocketServer } from 'ws';
import type WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import type { ClusterConfig } from '../shared/config.js';
import { Connection } from '../shared/connection.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { WriterBindings } from '../shared/log-writer.js';
import { listen, roleOf } from '../shared/listen.js';
import { checkAllowed } from '../shared/roles.js';
import { peerAddressOf, type TlsSettings } from '../shared/tls.js';
import { advertisedAddress } from '../shared/advertise.js';
import type { ClusterStatus, LeaderInfo, Message } from '../shared/protocol.js';
import { newSessionId } from '../shared/ids.js';
import { coordinatorPingIntervalMs, coordinatorSilenceMsMax, readLeaseClockRateMargin, readLeaseMarginMs } from '../shared/limits.js';
import { decodeState } from '../shared/state-file.js';
import * as cluster from './cluster.js';
import type { ConfigStore, Leadership } from './config-store.js';
import { LocalStore } from './local-store.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd-store.js';
import { ConfigLog } from './config-log.js';
import { DaemonSessions } from './daemon-sessions.js';
import { BackupService, type BackupServiceOptions } from './backup-service.js';
import { awaitedServers } from './settle.js';
import { CoordinatorMetrics, type Answers } from './coordinator-metrics.js';
import { newRegistry, serveMetrics, type MetricsEndpoint } from '../shared/metrics.js';

export interface CoordinatorOptions {
  host: string;
  port: number;
  /** The address daemons and clients dial, HOST or HOST:PORT (the bound port by default): needed on a wildcard host. */
  advertise?: string | undefined;
  /** The local store's data dir; not with `etcd`. */
  dataDir?: string | undefined;
  /** The config in etcd, shared with every coordinator started with the same endpoints and prefix. */
  etcd?: Omit<EtcdStoreOptions, 'log'> | undefined;
  /** A coordinator.bin to start from; only into an empty store. */
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
  /** Serve Prometheus metrics on this port of `host` (0: any free port); undefined: none. */
  metricsPort?: number | undefined;
  /** Testing only: stall backups on entering a state. */
  faultStallAt?: BackupServiceOptions['faultStallAt'];
}

/** What serves while this process leads: one per leadership. */
interface Term {
  leadership: Leadership;
  configLog: ConfigLog;
  sessions: DaemonSessions;
  backups: BackupService;
}

export class Coordinator {
  private term: Term | undefined;
  private readonly connections = new Set<Connection>();
  private server!: WebSocketServer;
  private stopping = false;
  private readonly campaigning = new AbortController();
  private readonly metrics: CoordinatorMetrics | undefined;
  private metricsEndpoint: MetricsEndpoint | undefined;
  /** Where this coordinator listens. */
  bound = '';
  /** What daemons and clients dial: --advertise, else where it listens. */
  address = '';

  private constructor(
    private readonly store: ConfigStore,
    private readonly options: CoordinatorOptions,
  ) {
    if (options.metricsPort !== undefined) {
      this.metrics = new CoordinatorMetrics(newRegistry('coordinator'), () => ({
        leading: this.leading,
        config: this.leading ? this.term?.configLog.current : undefined,
        epoch: this.leading ? this.term?.leadership.epoch : undefined,
      }));
    }
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
    const restored = options.restoreFrom === undefined ? undefined : readRestore(options.restoreFrom);
    const store: ConfigStore = options.etcd
      ? new EtcdStore({ ...options.etcd, log: options.log })
      : await LocalStore.open(options.dataDir ?? badRequest('the coordinator needs --data (or --etcd)'));
    const coordinator = new Coordinator(store, options);
    try {
      // Listen before writing anything: a start that cannot listen (port in use) leaves the store as it found it,
      // so a failed --restore can be run again.
      await coordinator.listen();
      if (restored) {
        await store.restore(cluster.restoredCluster(restored));
        options.log.info({ clusterId: restored.clusterId, version: restored.version, epoch: restored.epoch ?? 0, from: options.restoreFrom }, 'restored');
      }
      const campaign = coordinator.campaign();
      // The local store leads at once: started means serving, as before there were several coordinators.
      if (!options.etcd) await campaign;
      else campaign.catch((error) => options.log.error({ err: asKvError(error).message }, 'cannot campaign'));
      const { bound: address, address: advertised } = coordinator;
      options.log.info({ address, ...(advertised !== address && { advertised }), store: store.describe().kind }, 'listening');
      return coordinator;
    } catch (error) {
      coordinator.stopping = true;
      coordinator.campaigning.abort();
      coordinator.server?.close();
      await coordinator.metricsEndpoint?.close();
      await store.close();
      throw error;
    }
  }

  /** The config, while this process leads. */
  get current(): ClusterConfig {
    if (!this.term) throw new KvError('NOT_LEADER', 'this coordinator does not lead');
    return this.term.configLog.current;
  }

  /** The cluster's id, while this process leads (a follower does not read the config). */
  get clusterId(): string | undefined {
    return this.term?.configLog.current.clusterId;
  }

  /** Whether this process leads now. */
  get leading(): boolean {
    return this.term?.configLog.leading ?? false;
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
    if (this.metrics && this.options.metricsPort !== undefined) {
      this.metricsEndpoint = await serveMetrics(this.options.host, this.options.metricsPort, this.metrics.registry);
      this.options.log.info({ address: this.metricsEndpoint.address }, 'metrics listening');
    }
  }

  /** Campaigns until this process leads, then begins its term; again after every step-down. */
  private async campaign(): Promise<void> {
    if (this.stopping) return;
    let leadership: Leadership;
    try {
      leadership = await this.store.campaign(this.address, this.campaigning.signal);
    } catch (error) {
      if (this.stopping) return;
      throw error;
    }
    try {
      await this.begin(leadership);
    } catch (error) {
      if (!this.options.etcd) throw error;
      // Deposed before the term could start (its first save was fenced off: the leadership has ended, and onEnd
      // campaigns again), or etcd did not take the save: give the leadership up, which campaigns again too.
      this.options.log.warn({ epoch: leadership.epoch, err: asKvError(error).message }, 'could not begin leading');
      if (leadership.leading) await leadership.resign();
    }
  }

  private async begin(leadership: Leadership): Promise<void> {
    const { log } = this.options;
    const stored = leadership.stored;
    let initial: ClusterConfig;
    let awaited: ReadonlySet<string> = new Set();
    if (stored) {
      // Sessions did not survive the restart or failover: every daemon must register again. A freeze did not
      // either: the backup that set it is gone, and daemons have thawed by their lease.
      awaited = awaitedServers(stored);
      initial = stored.servers.reduce(
        (config, s) => (s.state === 'available' ? cluster.setServerState(config, s.id, 'not_available') : config),
        cluster.thaw(stored),
      );
      log.info({ clusterId: stored.clusterId, version: stored.version, epoch: leadership.epoch }, 'leading: loaded cluster');
    } else {
      initial = cluster.newCluster();
      log.info({ clusterId: initial.clusterId, epoch: leadership.epoch }, 'leading: created cluster');
    }
    if (this.options.valueBytesMax !== undefined) initial = cluster.setValueBytesMax(initial, this.options.valueBytesMax);
    let sessions: DaemonSessions | undefined;
    let backups: BackupService | undefined;
    const configLog = new ConfigLog(leadership, initial, {
      placement: () => sessions?.placement() ?? { settled: false },
      daemons: () => sessions?.connections() ?? [],
      log,
    });
    leadership.onEnd((why) => this.stepDown(leadership, why));
    await configLog.begin();
    if (!leadership.leading || this.stopping) return;
    sessions = new DaemonSessions(configLog, {
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.options.heartbeatTimeoutMs,
      settleGraceMs: this.options.heartbeatTimeoutMs + leadership.previousLeaderMsMax,
      awaited,
      onRegistered: (serverId) => backups?.onRegistered(serverId),
      log,
    });
    backups = new BackupService(configLog, sessions, { log, faultStallAfterFreezeMs: this.options.faultStallAfterFreezeMs, faultStallAt: this.options.faultStallAt, onEnded: (result) => this.metrics?.backupEnded(result) });
    this.term = { leadership, configLog, sessions, backups };
  }

  /** The leadership ended: stop serving as the leader, let everyone find the new one, campaign again. */
  private stepDown(leadership: Leadership, why: string): void {
    const term = this.term?.leadership === leadership ? this.term : undefined;
    this.term = undefined;
    term?.sessions.stop();
    if (this.stopping) return;
    this.options.log.warn({ epoch: leadership.epoch, why }, 'stepped down: no longer the leader');
    // Closed on the next turn of the event loop, not now: a request already in a socket's buffer (this process was
    // paused past its deadline, say) is read first and refused NOT_LEADER, an answer that says nothing was done,
    // instead of being cut off unanswered (CONNECTION_LOST, which leaves the client unsure).
    setImmediate(() => {
      for (const connection of this.connections) connection.close(1012, 'coordinator stepped down; ask another');
    });
    this.campaign().catch((error) => this.options.log.error({ err: asKvError(error).message }, 'cannot campaign'));
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
      this.term?.sessions.closed(connection);
    });
  }

  private leaderInfo(): LeaderInfo {
    if (this.leading) return { leading: true, leader: this.address, epoch: this.term!.leadership.epoch };
    const leader = this.store.leader();
    return { leading: false, leader: leader?.address ?? null, epoch: leader?.epoch ?? null };
  }

  /**
   * Serves one request; answers go through `to`, which is the connection itself unless --metrics-port counts them
   * (then a wrapper made per request, so a coordinator without metrics allocates nothing more).
   */
  private handle(message: Message, connection: Connection): void {
    const to: Answers = this.metrics ? this.metrics.counting(connection, message.t) : connection;
    try {
      checkAllowed('coordinator', connection.role, message.t);
    } catch (error) {
      const refusal = asKvError(error);
      this.options.log.warn({ peer: connection.peer, role: connection.role, t: message.t }, 'refused a request its role may not make');
      if ('id' in message && typeof message.id === 'number') to.fail(message.id, refusal);
      return;
    }
    const answer = (id: number, work: () => unknown) => {
      let result: Promise<unknown>;
      try {
        result = Promise.resolve(work());
      } catch (error) {
        result = Promise.reject(error);
      }
      result.then(
        (value) => to.reply(id, value),
        (error) => to.fail(id, asKvError(error)),
      );
    };
    if (message.t === 'leader') return to.reply(message.id, this.leaderInfo());
    if (message.t === 'open_session') {
      // 64 random bits: unique without any state to keep here, across restarts and coordinators alike.
      return to.reply(message.id, { session: newSessionId() });
    }
    const term = this.leading ? this.term : undefined;
    if (!term) {
      if (!('id' in message) || typeof message.id !== 'number') return;
      const leader = this.leaderInfo().leader;
      return to.fail(message.id, new KvError('NOT_LEADER', `this coordinator (${this.address}) does not lead; ${leader ? `the leader is ${leader}` : 'an election is under way'}`));
    }
    const { configLog, sessions, backups } = term;
    switch (message.t) {
      case 'register':
        return answer(message.id, () => sessions.register(message, connection));
      case 'leave':
        return answer(message.id, () => sessions.leave(connection));
      case 'config_ack':
        return sessions.ack(connection, message.version);
      case 'lease':
        return answer(message.id, () => sessions.lease(connection));
      case 'peer_unreachable':
        return answer(message.id, () => sessions.peerUnreachable(connection, message));
      case 'get_config':
        return answer(message.id, () => configLog.current);
      case 'subscribe':
        return answer(message.id, () => configLog.subscribe(connection));
      case 'add_space':
        return answer(message.id, () => configLog.change((c) => cluster.addSpace(c, message.name, message.partitions, message.tolerate)).catch((error) => {
          const refusal = asKvError(error);
          // Right after a restart or failover every daemon looks down until it registers again: say so.
          if (refusal.code !== 'UNAVAILABLE' || sessions.isSettled) throw refusal;
          throw new KvError('UNAVAILABLE', `${refusal.message}: this coordinator began leading moments ago and daemons are registering with it again; try again in a few seconds`);
        }));
      case 'rm_space':
        return answer(message.id, () => configLog.change((c) => cluster.rmSpace(c, message.name)));
      case 'set_read_only':
        return answer(message.id, () => configLog.change((c) => cluster.setReadOnly(c, message.readOnly)));
      case 'transfer_done': {
        return answer(message.id, () => {
          const serverId = sessions.serverOf(connection, 'transfers');
          return configLog.change((c) => cluster.promote(c, message.spaceId, message.partition, serverId, message.source));
        });
      }
      case 'server_forget':
        if (!sessions.isSettled) {
          // Its chains would change before every lease the previous leader granted has run out.
          return to.fail(message.id, new KvError('UNAVAILABLE', 'the coordinator began leading moments ago and waits for daemons to register again; try again in a few seconds'));
        }
        return answer(message.id, () => configLog.change((c) => cluster.forgetServer(c, message.serverId)));
      case 'status':
        return answer(message.id, () => this.status(term));
      case 'backup':
        return answer(message.id, () => backups.backup(message));
      case 'backup_lock':
        return answer(message.id, () => backups.lock.acquire(message.name, message.owner, message.token, message.ttlMs, message.renew));
      case 'backup_unlock':
        return answer(message.id, () => {
          backups.lock.release(message.token);
          return null;
        });
      case 'backup_release':
        return answer(message.id, () => backups.release(message.name));
      case 'list_snapshots':
        return answer(message.id, () => backups.list());
      default:
        if ('id' in message && typeof message.id === 'number') {
          to.fail(message.id, new KvError('BAD_REQUEST', `the coordinator does not serve ${message.t}`));
        }
    }
  }

  private async status(term: Term): Promise<ClusterStatus> {
    return {
      config: term.configLog.current,
      lock: term.backups.visibleLock(),
      lastBackup: term.backups.last,
      ...term.sessions.status(),
      // The member list is etcd's to tell: without etcd (its quorum lost, say) show-config still answers, naming this one.
      coordinators: { store: this.store.describe(), leader: this.address, epoch: term.leadership.epoch, members: await this.store.members().catch(() => [this.address]) },
    };
  }

  /** Stops accepting, lets the last change finish, hands the leadership over, closes the store. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.campaigning.abort();
    const term = this.term;
    this.term = undefined;
    term?.sessions.stop();
    this.server.close();
    for (const connection of this.connections) connection.close(1001, 'coordinator shutting down');
    if (term) {
      await term.configLog.idle();
      await term.leadership.resign().catch(() => {});
    }
    await this.store.close();
    await this.metricsEndpoint?.close();
  }
}

function readRestore(path: string): ClusterConfig {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new KvError('BAD_REQUEST', `cannot read ${path}: ${(error as Error).message}`);
  }
  return decodeState(bytes, path);
}

function badRequest(message: string): never {
  throw new KvError('BAD_REQUEST', message);
}

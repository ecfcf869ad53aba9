// The daemons' sessions with the leading coordinator, and the failure detector: registration, read leases (the
// heartbeats), acknowledgements, cut reports, and declaring a daemon dead once its lease has surely run out. One
// instance per leadership: sessions do not survive a restart or a failover, so a new leader waits for every daemon
// that was serving to register again, or one failure timeout, before placement may drop anyone (settle.ts).
import type { ClusterConfig } from '../shared/config.js';
import type { Connection } from '../shared/connection.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { MessageOf, RequestOf, RequestType, Results } from '../shared/protocol.js';
import * as cluster from './cluster.js';
import type { ConfigLog } from './config-log.js';
import { CutReports } from './cut-reports.js';
import { unblocksLeaving } from './placement.js';
import { isSettled } from './settle.js';

export interface SessionsOptions {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** How long after the start of this leadership placement may drop daemons that have not registered again. */
  settleGraceMs: number;
  /** The servers available in the config this leadership started from (settle.ts). */
  awaited: ReadonlySet<string>;
  /** Called when a daemon has registered (the backup service delivers what it owes it). */
  onRegistered(serverId: string): void;
  log: Logger;
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

export class DaemonSessions {
  private readonly sessions = new Map<string, DaemonSession>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly settleTimer: NodeJS.Timeout;
  /** False at the start of a leadership until the daemons that were serving are back: they keep their place meanwhile. */
  private settled = false;
  private readonly since = performance.now();
  /** When checkHeartbeats last ran: a check that runs late (this process stalled) declares nobody dead. */
  private lastCheck = this.since;
  private stopped = false;
  private readonly cuts = new CutReports();
  /** The daemons taken out of chains because others cannot reach them, with why: derived from `cuts`. */
  private cutOff = new Map<string, string>();

  /** `log`: the config log this leadership changes through, its starting config persisted. */
  constructor(
    private readonly log: ConfigLog,
    private readonly options: SessionsOptions,
  ) {
    this.heartbeat = setInterval(() => this.checkHeartbeats(), options.heartbeatIntervalMs);
    this.settleTimer = setTimeout(() => this.settleNow(), options.settleGraceMs);
    this.settleWhenAllBack();
  }

  /** What placement needs: whether down daemons may be dropped yet, and what each session acknowledged. */
  placement() {
    return { settled: this.settled, acked: new Map([...this.sessions.values()].map((s) => [s.serverId, s.ackedVersion])) };
  }

  connections(): Iterable<Connection> {
    return [...this.sessions.values()].map((s) => s.connection);
  }

  connected(serverId: string): boolean {
    return this.sessions.has(serverId);
  }

  get isSettled(): boolean {
    return this.settled;
  }

  status() {
    return {
      acked: Object.fromEntries([...this.sessions.values()].map((s) => [s.serverId, s.ackedVersion])),
      cutOff: Object.fromEntries(this.cutOff),
      cuts: this.cuts.list(),
    };
  }

  /** A request to a daemon over its session. */
  ask<T extends RequestType>(serverId: string, request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]> {
    const session = this.sessions.get(serverId);
    if (!session) return Promise.reject(new KvError('UNAVAILABLE', `server ${serverId} is not connected`));
    return session.connection.request(request, timeoutMs);
  }

  sessionOf(connection: Connection): DaemonSession | undefined {
    for (const session of this.sessions.values()) if (session.connection === connection) return session;
    return undefined;
  }

  /** Logged when a daemon's connection closes; its session ends later (checkHeartbeats). */
  closed(connection: Connection): void {
    // A daemon whose session closed keeps its place until its read lease has surely run out: the close may be
    // seen here long before the daemon sees it, and meanwhile it may answer reads as a tail. checkHeartbeats
    // ends the session then, unless the daemon registers again first.
    const session = this.sessionOf(connection);
    if (session && !this.stopped) this.options.log.info({ serverId: session.serverId }, 'daemon session closed; it keeps its place until its lease has run out');
  }

  async register(message: MessageOf<'register'>, connection: Connection) {
    const { log } = this.options;
    // A daemon whose data is not this incarnation's is told so, even while the server's own daemon is connected.
    try {
      cluster.checkDataOf(this.log.current, message);
    } catch (error) {
      log.warn({ serverId: message.serverId, address: message.address, code: asKvError(error).code, err: asKvError(error).message }, 'refused a daemon');
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
    // run out) must leave its chains. Not after a coordinator restart or failover, when every daemon registers
    // anew: a whole cluster started again keeps its chains.
    const registration = { ...message, fresh: message.fresh === true && live !== undefined };
    try {
      config = await this.log.change((c) => {
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
    log.info({ serverId, address: message.address, version: config.version }, 'daemon registered');
    this.settleWhenAllBack();
    connection.send({ t: 'config', config: this.log.current });
    this.options.onRegistered(serverId);
    if (this.cutOff.has(serverId)) this.takeOut(serverId);
    return answer;
  }

  ack(connection: Connection, version: number): void {
    const session = this.sessionOf(connection);
    if (!session) return;
    session.ackedVersion = Math.max(session.ackedVersion, version);
    // A member leaving a chain waits for this: placement lets it go now.
    if (unblocksLeaving(this.log.current, session.serverId, session.ackedVersion)) {
      this.log.change((c) => c).catch((error) => this.options.log.error({ err: error }, 'cannot place after an acknowledgement'));
    }
  }

  /** The heartbeat: the answer grants a read lease (daemon/read-lease.ts), only while this leadership holds. */
  lease(connection: Connection) {
    const session = this.sessionOf(connection);
    if (!session) throw new KvError('UNAVAILABLE', 'only a registered daemon holds a read lease; register first');
    if (!this.log.leading) throw new KvError('NOT_LEADER', 'this coordinator no longer leads: no read lease; register with the leader');
    const cutOff = this.cutOff.get(session.serverId);
    if (cutOff !== undefined) {
      // Alive, but granted nothing: once it has given its lease up, it is kept as a session, not as a member.
      if (session.leaseFree) session.lastSeen = performance.now();
      throw new KvError('CUT_OFF', `no read lease while another daemon cannot reach this one (${cutOff})`);
    }
    // The config pushes this session is owed went out on this connection before this answer.
    session.lastSeen = performance.now();
    const { heartbeatTimeoutMs: timeoutMs, heartbeatIntervalMs: intervalMs } = this.options;
    return { version: this.log.current.version, timeoutMs, intervalMs };
  }

  peerUnreachable(connection: Connection, message: MessageOf<'peer_unreachable'>): null {
    const session = this.sessionOf(connection);
    if (!session) throw new KvError('BAD_REQUEST', 'only a registered daemon reports peers');
    if (this.cuts.report(session.serverId, message.serverId, message.reachable, performance.now())) {
      this.options.log.warn({ reporter: session.serverId, peer: message.serverId, reachable: message.reachable }, message.reachable ? 'a daemon reaches another again' : 'a daemon cannot reach another');
    }
    // A renewal too: whether a daemon may be spared can change with the chains (cut-reports.ts).
    this.reconcileCuts();
    return null;
  }

  /** The registered daemon sending on `connection`, or BAD_REQUEST saying what only a daemon may report. */
  serverOf(connection: Connection, what: string): string {
    const session = this.sessionOf(connection);
    if (!session) throw new KvError('BAD_REQUEST', `only a registered daemon reports ${what}`);
    return session.serverId;
  }

  async leave(connection: Connection): Promise<null> {
    const session = this.sessionOf(connection);
    if (session) await this.endSession(session, 'shutdown', 'daemon shut down');
    return null;
  }

  /** Stops the timers; the sessions' connections are closed by the process. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.settleTimer);
  }

  /** Settled: every daemon that was serving is back (always so for a new cluster), or the grace time is over. */
  private settleWhenAllBack(): void {
    if (!this.settled && isSettled(this.log.current, this.options.awaited, performance.now() - this.since, this.options.settleGraceMs)) this.settleNow();
  }

  private settleNow(): void {
    if (this.settled || this.stopped) return;
    this.settled = true;
    clearTimeout(this.settleTimer);
    // A no-op change runs placement: daemons that did not come back now leave their chains.
    this.log.change((c) => c).catch((error) => this.options.log.error({ err: asKvError(error).message }, 'cannot settle the placement'));
  }

  private endSession(session: DaemonSession, state: 'not_available' | 'shutdown', why: string): Promise<unknown> {
    if (this.stopped || this.sessions.get(session.serverId) !== session) return Promise.resolve();
    this.sessions.delete(session.serverId);
    this.options.log.info({ serverId: session.serverId, state, why }, 'daemon session ended');
    if (this.cuts.forgetReporter(session.serverId)) this.reconcileCuts();
    return this.log.change((c) => cluster.setServerState(c, session.serverId, state)).catch((error) =>
      this.options.log.error({ err: asKvError(error).message, serverId: session.serverId }, 'cannot record the daemon state'),
    );
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
    if (late || !this.log.leading) return;
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
    const next = this.cuts.cutOff(this.log.current, new Set(previous.keys()));
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
      this.log.change((c) => cluster.setServerState(c, serverId, 'available')).catch((error) =>
        this.options.log.error({ err: asKvError(error).message, serverId }, 'cannot record the daemon state'),
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
        return this.log.change((c) => cluster.setServerState(c, serverId, 'not_available'));
      },
      (error) => this.options.log.warn({ serverId, err: asKvError(error).message }, 'a cut-off daemon did not give up its lease; it is dropped once the lease runs out'),
    ).catch((error) => this.options.log.error({ err: asKvError(error).message, serverId }, 'cannot record the daemon state'));
  }
}

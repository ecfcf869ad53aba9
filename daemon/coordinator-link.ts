// The daemon's session with the coordinator that leads: register (getting or proving its identity), receive every
// config, acknowledge it, and reconnect (to the leader, found anew) when the session drops or the coordinator says
// it no longer leads. Every heartbeat interval the daemon asks for a read lease
// (daemon/read-lease.ts); those requests are its heartbeats, by which the coordinator tells it is alive.
import { Connection } from '../shared/connection.js';
import { openLeader } from '../shared/coordinator-finder.js';
import type { ClusterConfig } from '../shared/config.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { heartbeatIntervalMsDefault, heartbeatTimeoutMsDefault, reconnectDelayMsMax, reconnectDelayMsMin, requestTimeoutMsDefault } from '../shared/limits.js';
import { Backoff } from '../shared/backoff.js';
import { dataFormatVersions } from '../shared/data-format.js';
import type { ReadLease } from './read-lease.js';
import type { TlsSettings } from '../shared/tls.js';
import type { Identity } from './storage.js';
import type { Message, RequestOf, RequestType, Results } from '../shared/protocol.js';

/** Registration answers after which retrying cannot help. */
const fatalCodes = new Set(['CLUSTER_MISMATCH', 'UNKNOWN_SERVER', 'BAD_REQUEST', 'DATA_DIR_INVALID', 'UNAUTHENTICATED', 'FORBIDDEN']);
/** Failed registrations between two warnings in the log, after the first. */
const registerWarnEvery = 20;

export interface LinkOptions {
  /** The coordinators, HOST:PORT each: the daemon registers with the one that leads. */
  coordinators: readonly string[];
  /** The address clients reach this daemon at. */
  address: string;
  identity: Identity | undefined;
  /** The backup cut this data dir is a copy of (its manifest.json), if it is one. */
  copyOf: { name: string; configVersion: number } | undefined;
  saveIdentity: (identity: Identity) => Promise<void>;
  onConfig: (config: ClusterConfig) => void;
  /** Requests the coordinator sends this daemon (backups), answered on the same connection. */
  onRequest: (message: Message, connection: Connection) => void;
  /** Called when the coordinator refuses this daemon for good after the first registration. */
  onFatal: (error: KvError) => void;
  /** The lease this session's heartbeats renew. */
  lease: ReadLease;
  log: Logger;
  /** TLS on: the session is TLS, with the daemon's certificate (shared/tls.ts). */
  tls?: TlsSettings | undefined;
}

export class CoordinatorLink {
  private connection: Connection | undefined;
  /** The connection the last config came on (see ack). */
  private configFrom: Connection | undefined;
  /** The coordinator that led when last registered with: asked first the next time. */
  private leader: string | undefined;
  private known: Identity | undefined;
  private stopped = false;
  /** Registered once in this process: the coordinator is told when a registration is this process's first. */
  private registered = false;
  private renewTimer: NodeJS.Timeout | undefined;
  /** Ends the wait between two registration attempts, while there is one. */
  private wakeRetry: (() => void) | undefined;
  /**
   * The coordinator's heartbeat interval, from its lease answers: how often to renew, and the longest wait between
   * attempts to register again, so a restarted coordinator sees every daemon back well within its grace.
   */
  private intervalMs = heartbeatIntervalMsDefault;
  /**
   * The coordinator's heartbeat timeout, from its lease answers: a session whose coordinator has answered no lease
   * request for this long is dropped and registered anew. A coordinator whose host lost power closes nothing; its
   * sockets stay ESTABLISHED on this side, and without this the daemon would wait on it for good.
   */
  private timeoutMs = heartbeatTimeoutMsDefault;
  /** When (lease.now()) the coordinator last answered a lease request on the current session. */
  private answeredAt = 0;
  /** The coordinator refuses this daemon leases (CUT_OFF): logged once, when it starts and when it ends. */
  private cutOff = false;
  private readonly backoff = new Backoff(reconnectDelayMsMin, reconnectDelayMsMax);

  constructor(private readonly options: LinkOptions) {
    this.known = options.identity;
  }

  get serverId(): string | undefined {
    return this.known?.serverId;
  }

  get identity(): Identity | undefined {
    return this.known;
  }

  /**
   * Resolves once registered; rejects on a fatal refusal (another cluster, unknown server id), or at once when
   * `abort` fires first (the process is told to stop before it ever reached the coordinator).
   */
  async start(abort?: AbortSignal): Promise<void> {
    const aborted = new Promise<never>((_, reject) => {
      const stop = () => {
        this.halt();
        reject(new KvError('UNAVAILABLE', 'stopped before registering with the coordinator'));
      };
      if (abort?.aborted) stop();
      else abort?.addEventListener('abort', stop, { once: true });
    });
    aborted.catch(() => {}); // not every start is aborted: the race below is what reads it
    await Promise.race([this.connectUntilRegistered(), aborted]);
  }

  /** A request to the coordinator over this daemon's session. */
  ask<T extends RequestType>(request: { t: T } & RequestOf<T>): Promise<Results[T]> {
    const connection = this.connection;
    if (!connection || connection.closed) return Promise.reject(new KvError('UNAVAILABLE', 'not connected to the coordinator'));
    return connection.request(request, requestTimeoutMsDefault).catch((error: unknown) => {
      if (asKvError(error).code === 'NOT_LEADER') this.leaderLost(connection, request.t);
      throw error;
    });
  }

  /**
   * Acknowledges on the connection the config came on: the coordinator pushes a registering daemon its config
   * before it answers the registration, so the session is not this.connection yet when that push is applied.
   */
  ack(version: number): void {
    const to = this.configFrom && !this.configFrom.closed ? this.configFrom : this.connection;
    to?.send({ t: 'config_ack', version });
  }

  /** Tells the coordinator this daemon is shutting down on purpose, then closes the session. */
  async leave(): Promise<void> {
    this.halt();
    const connection = this.connection;
    if (!connection || connection.closed) return;
    await connection.request({ t: 'leave' }, 2_000).catch(() => {});
    connection.close();
  }

  /** No more registering, renewing or reconnecting; a wait between attempts ends now. */
  private halt(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    this.wakeRetry?.();
  }

  private async connectUntilRegistered(): Promise<void> {
    const { log } = this.options;
    // The first attempt goes at once: the session dropped, or the coordinator restarted and waits for us.
    for (let failures = 0; !this.stopped; failures++) {
      try {
        await this.register();
        this.backoff.reset();
        return;
      } catch (error) {
        const kvError = asKvError(error);
        if (fatalCodes.has(kvError.code)) throw kvError;
        if (failures % registerWarnEvery === 0) {
          log.warn({ coordinators: this.options.coordinators.join(','), code: kvError.code, err: kvError.message, failures: failures + 1 }, 'cannot register; retrying');
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.backoff.next(this.intervalMs));
          this.wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeRetry = undefined;
      }
    }
  }

  private async register(): Promise<void> {
    const { options } = this;
    const connection = await openLeader(
      options.coordinators,
      (message, from) => {
        if (message.t === 'config') {
          this.configFrom = from;
          options.onConfig(message.config);
        } else options.onRequest(message, from);
      },
      { timeoutMs: requestTimeoutMsDefault, tls: options.tls, preferred: this.leader },
    );
    this.leader = connection.peer;
    try {
      const answer = await connection.request(
        {
          t: 'register',
          address: options.address,
          serverId: this.known?.serverId ?? null,
          clusterId: this.known?.clusterId ?? null,
          fresh: !this.registered,
          incarnation: this.known?.incarnation ?? null,
          copyOf: options.copyOf ?? null,
          dataFormat: dataFormatVersions.daemon,
        },
        requestTimeoutMsDefault,
      );
      // Stamped with the incarnation that took it in: from now on only that incarnation takes in this data.
      if (this.known?.incarnation !== answer.incarnation) {
        this.known = { serverId: answer.serverId, clusterId: answer.clusterId, incarnation: answer.incarnation };
        await options.saveIdentity(this.known);
      }
    } catch (error) {
      connection.close();
      throw error;
    }
    this.connection = connection;
    this.registered = true;
    // The logger carries the server id (daemon.ts binds it).
    options.log.info({ coordinator: connection.peer, clusterId: this.known.clusterId, incarnation: this.known.incarnation }, 'registered with the coordinator');
    this.answeredAt = options.lease.now();
    this.renew(connection);
    connection.onceClosed(() => {
      clearTimeout(this.renewTimer);
      if (this.stopped) return;
      options.log.warn({ coordinator: connection.peer }, 'lost the coordinator session; reconnecting');
      this.connectUntilRegistered().catch((error) => options.onFatal(asKvError(error)));
    });
  }

  /**
   * The session's coordinator answered NOT_LEADER (it stepped down): drop the session, whose close registers anew
   * with the leader found again. The lease lapses on its own meanwhile; a deposed leader's configs are refused by
   * epoch (shared/config.ts supersedes).
   */
  private leaderLost(connection: Connection, request: string): void {
    if (connection !== this.connection || connection.closed) return;
    this.options.log.warn({ coordinator: connection.peer, request }, 'the coordinator no longer leads; registering with the leader');
    connection.terminate();
  }

  /**
   * Asks for a read lease now and every heartbeat interval while this session lasts. The next request goes out on
   * its timer, not after the answer, so one slow answer does not delay the heartbeats behind it.
   */
  private renew(connection: Connection): void {
    if (this.stopped || connection.closed) return;
    const { lease, log } = this.options;
    const requestedAt = lease.now();
    const silentMs = requestedAt - this.answeredAt;
    if (silentMs > this.timeoutMs) {
      log.warn({ coordinator: connection.peer, silentMs: Math.round(silentMs) }, 'the coordinator answers no lease requests; dropping the session to register anew');
      connection.terminate(); // its close starts the reconnect
      return;
    }
    connection.request({ t: 'lease' }, requestTimeoutMsDefault).then(
      (answer) => {
        if (connection === this.connection) this.answeredAt = Math.max(this.answeredAt, lease.now());
        if (this.cutOff) log.info('the coordinator grants leases again: the cut is over');
        this.cutOff = false;
        this.timeoutMs = answer.timeoutMs;
        lease.grant(requestedAt, answer);
        if (answer.intervalMs === this.intervalMs) return;
        this.intervalMs = answer.intervalMs;
        clearTimeout(this.renewTimer);
        this.renewTimer = setTimeout(() => this.renew(connection), Math.max(0, requestedAt + this.intervalMs - lease.now()));
      },
      (error) => {
        const refusal = asKvError(error);
        // Refused because another daemon reported this one unreachable: the coordinator is there, and the session
        // stays (it brings the config that takes this daemon back once the cut heals); no lease meanwhile.
        if (refusal.code === 'CUT_OFF' && connection === this.connection) {
          this.answeredAt = Math.max(this.answeredAt, lease.now());
          lease.revoke();
          if (!this.cutOff) log.warn({ err: refusal.message }, 'the coordinator grants no lease: another daemon cannot reach this one');
          this.cutOff = true;
          return;
        }
        if (refusal.code === 'NOT_LEADER') return this.leaderLost(connection, 'lease');
        log.debug({ err: refusal.message }, 'lease request failed');
      },
    );
    this.renewTimer = setTimeout(() => this.renew(connection), this.intervalMs);
  }
}

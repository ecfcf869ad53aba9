// The kv client: follows the cluster config (subscribed to the pushes of the coordinator that leads, found among
// those it is given, and subscribing again by itself whenever that connection drops), routes every operation
// straight to the daemon that serves its partition, and keeps one pipelined connection per daemon. Stale routes
// are refreshed and retried within the operation's deadline, writes included: every write carries a request id
// (this client's session, issued by the coordinator, and a sequence number), so a daemon that already applied a
// write answers a second attempt with the first one's result instead of applying it again.
//
//   const c = await Client.connect('10.0.0.1:1982,10.0.0.2:1982');
//   await c.put('users', 'ada', { name: 'Ada' });
//   await c.get('users', 'ada'); // { name: 'Ada' }; undefined when absent
import { findServer, findSpace, supersedes, type ClusterConfig, type ServerInfo } from './config.js';
import { Connection } from './connection.js';
import { openLeader, parseCoordinators } from './coordinator-finder.js';
import { ConnectionPool } from './connection-pool.js';
import { KvError, asKvError, badRequest } from './errors.js';
import { coordinatorPingIntervalMs, coordinatorSilenceMsMax, keyBytesMax, partitionsDefault, snapshotSealMsMax, reconnectDelayMsMax, reconnectDelayMsMin, requestTimeoutMsDefault, requestTimeoutMsMax, scanPageEntriesMax, writeWindowMax } from './limits.js';
import { partitionOf } from './partition.js';
import { daemonPath, retryableTypes, writeTypes, type Attrs, type BackupLock, type BackupResult, type ClusterStatus, type RequestOf, type RequestType, type Results } from './protocol.js';
import { Backoff } from './backoff.js';
import type { TlsSettings } from './tls.js';


export type { Attrs, AttrValue } from './protocol.js';
export type { ClusterConfig } from './config.js';
export { KvError } from './errors.js';

export interface ClientOptions {
  /** How long one operation may take, retries included. */
  timeoutMs?: number;
  /**
   * Follow config pushes (default), reconnecting to the coordinator whenever the connection drops. Without, the
   * client refreshes only when a daemon says its route is stale.
   */
  subscribe?: boolean;
  /**
   * TLS on: connect over wss:// with this certificate (a client or admin one, shared/tls.ts) and trust only servers
   * with a certificate of this CA. Undefined: plain ws://, for a cluster with TLS off.
   */
  tls?: TlsSettings | undefined;
}

type DataRequest = 'get' | 'put' | 'del' | 'put_if_not_exist' | 'cond_put' | 'atomic_add' | 'count' | 'scan';
type KeyedRequest = 'get' | 'put' | 'del' | 'put_if_not_exist' | 'cond_put' | 'atomic_add';
type WriteRequest = 'put' | 'del' | 'put_if_not_exist' | 'cond_put' | 'atomic_add';
/** A request's frame, built afresh for each attempt (the connection sets its id) with the config version routed by. */
type FrameOf<T extends RequestType> = (version: number) => { t: T } & RequestOf<T>;
/** A write's frame, from the version routed by, its sequence number and the lowest one the session awaits. */
type WriteFrameOf<T extends WriteRequest> = (version: number, seq: number, awaiting: number) => { t: T } & RequestOf<T>;

/** Where one daemon's requests go: its address, and the connection's name in the pool. */
interface Route {
  server: ServerInfo;
  path: string;
  poolKey: string;
}

/**
 * A space as routing needs it, derived from one config: for each partition, the daemon that takes its writes
 * (the chain's head) and the one that answers its reads (the tail); undefined where that daemon is not available.
 */
interface SpaceRoutes {
  partitions: Array<{ head: Route | undefined; tail: Route | undefined }>;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Coordinator requests that may be sent again after the connection dropped with the answer unknown: they change
 * nothing, or change it to the same state twice. Any request answered NOT_LEADER may: a follower changed nothing.
 */
const coordinatorRetryableTypes = new Set<RequestType>(['get_config', 'subscribe', 'open_session', 'status', 'list_snapshots', 'set_read_only', 'backup_release', 'leader']);

/** The coordinator that answered is not (or no longer) the leader: find the leader and ask it instead. */
const leaderLost = (type: RequestType, error: KvError): boolean =>
  error.code === 'NOT_LEADER' || (error.code === 'CONNECTION_LOST' && coordinatorRetryableTypes.has(type));

/** What is left of a deadline (performance.now()), at least 1 ms: a request's timeout, never zero or negative. */
const remainingMs = (deadline: number) => Math.max(1, Math.floor(deadline - performance.now()));

export class Client {
  private config: ClusterConfig;
  private coordinator: Connection | undefined;
  /** The coordinator that led when last found: asked first when the session is made anew. */
  private leader: string;
  private reconnecting: Promise<Connection> | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly daemons: ConnectionPool;
  /** Derived from `config` (rebuilt when it changes), so an operation does not search the config for its route. */
  private routes = new Map<string, SpaceRoutes>();
  private routesConfig: ClusterConfig | undefined;
  /** Set while the client reconnects to the coordinator on its own, to follow the config again. */
  private resubscribeTimer: NodeJS.Timeout | undefined;
  private resubscribing = false;
  private readonly resubscribeBackoff = new Backoff(reconnectDelayMsMin, reconnectDelayMsMax);
  private closed = false;
  readonly timeoutMs: number;
  /** The sequence number of this session's next write. */
  private nextSeq = 1;
  /** Writes sent and not yet answered (or given up on), by sequence number. */
  private readonly awaited = new Set<number>();
  /** The lowest sequence number this client still awaits (nextSeq when none): daemons forget the records below it. */
  private lowestAwaited = 1;
  private windowWaiters: Array<() => void> = [];

  private constructor(
    /** The coordinators given, as HOST:PORT: the leader is found among them (or where they send the client). */
    readonly coordinatorAddresses: readonly string[],
    private readonly options: ClientOptions,
    coordinator: Connection,
    config: ClusterConfig,
    /** This client's session: the first half of every write's request id. */
    private readonly session: string,
  ) {
    this.timeoutMs = options.timeoutMs ?? requestTimeoutMsDefault;
    this.daemons = new ConnectionPool({ tls: options.tls });
    this.config = config;
    this.leader = coordinator.peer;
    this.adoptCoordinator(coordinator);
  }

  /** The coordinator this client's session is with (the leader when last found). */
  get coordinatorAddress(): string {
    return this.leader;
  }

  /**
   * Connects to the coordinator that leads among `coordinators` (HOST:PORT each, in an array or as a comma list),
   * within the timeout, elections included.
   */
  static async connect(coordinators: string | readonly string[], options: ClientOptions = {}): Promise<Client> {
    const timeoutMs = options.timeoutMs ?? requestTimeoutMsDefault;
    if (!(timeoutMs > 0 && timeoutMs <= requestTimeoutMsMax)) {
      throw badRequest(`an operation's timeout is 1 to ${requestTimeoutMsMax} ms, not ${timeoutMs}`);
    }
    const addresses = parseCoordinators(coordinators);
    const deadline = performance.now() + timeoutMs;
    const backoff = new Backoff(reconnectDelayMsMin, reconnectDelayMsMax);
    let client: Client | undefined;
    let preferred: string | undefined;
    for (;;) {
      const connection = await openLeader(addresses, (m) => client?.onPush(m), { timeoutMs: remainingMs(deadline), tls: options.tls, preferred });
      try {
        const type = options.subscribe === false ? 'get_config' : 'subscribe';
        const [config, { session }] = await Promise.all([
          connection.request({ t: type }, remainingMs(deadline)),
          connection.request({ t: 'open_session' }, remainingMs(deadline)),
        ]);
        client = new Client(addresses, options, connection, config, session);
        return client;
      } catch (error) {
        connection.close();
        // It stepped down between saying it leads and answering: find the new leader, within the same deadline.
        if (!leaderLost('open_session', asKvError(error)) || performance.now() >= deadline) throw error;
        preferred = undefined;
        await pause(backoff.next(remainingMs(deadline)));
      }
    }
  }

  /** The config this client routes by (it follows the coordinator's pushes). */
  get currentConfig(): ClusterConfig {
    return this.config;
  }

  // ---- data operations ----

  // Each operation writes its frame as one object literal: every frame of a type then has one shape, which V8 and
  // msgpackr handle several times faster than objects assembled by spreading.

  async get(space: string, key: string): Promise<Attrs | undefined> {
    return (await this.keyed(space, key, (v) => ({ t: 'get', v, space, key }))) ?? undefined;
  }

  async put(space: string, key: string, attrs: Attrs): Promise<void> {
    const session = this.session;
    await this.write(space, key, (v, seq, awaiting) => ({ t: 'put', v, space, key, session, seq, awaiting, attrs }));
  }

  /** Resolves true when the key existed. */
  del(space: string, key: string): Promise<boolean> {
    const session = this.session;
    return this.write(space, key, (v, seq, awaiting) => ({ t: 'del', v, space, key, session, seq, awaiting }));
  }

  /** Stores attrs only if the key is absent; otherwise fails with CONDITION_FAILED. */
  async putIfNotExist(space: string, key: string, attrs: Attrs): Promise<void> {
    const session = this.session;
    await this.write(space, key, (v, seq, awaiting) => ({ t: 'put_if_not_exist', v, space, key, session, seq, awaiting, attrs }));
  }

  /** Sets attrs only if every attribute in `expect` has that value now; otherwise fails with CONDITION_FAILED. */
  async condPut(space: string, key: string, expect: Attrs, attrs: Attrs): Promise<void> {
    const session = this.session;
    await this.write(space, key, (v, seq, awaiting) => ({ t: 'cond_put', v, space, key, session, seq, awaiting, expect, attrs }));
  }

  /** Adds to numeric attributes (absent ones count as 0) and resolves to the new value. */
  atomicAdd(space: string, key: string, deltas: Record<string, number>): Promise<Attrs> {
    const session = this.session;
    return this.write(space, key, (v, seq, awaiting) => ({ t: 'atomic_add', v, space, key, session, seq, awaiting, deltas }));
  }

  async count(space: string): Promise<number> {
    const partitions = await this.partitionCount(space);
    const counts = await Promise.all(
      Array.from({ length: partitions }, (_, partition) =>
        this.routed(space, partition, (v) => ({ t: 'count', v, space, partition })),
      ),
    );
    return counts.reduce((sum, n) => sum + n, 0);
  }

  /** Every entry of a space, one partition after another, fetched a page at a time. */
  async *scan(space: string, pageSize = scanPageEntriesMax): AsyncGenerator<[string, Attrs]> {
    const partitions = await this.partitionCount(space);
    for (let partition = 0; partition < partitions; partition++) {
      let after: string | null = null;
      do {
        const from = after;
        const page: Results['scan'] = await this.routed(space, partition, (v) => ({ t: 'scan', v, space, partition, after: from, limit: pageSize }));
        yield* page.entries;
        after = page.next;
      } while (after !== null);
    }
  }

  // ---- administration ----

  /** The coordinator's current config (fetched, not the cached one). */
  async showConfig(): Promise<ClusterConfig> {
    return this.adopt(await this.admin({ t: 'get_config' }));
  }

  async addSpace(name: string, options: { partitions?: number; tolerate?: number } = {}): Promise<ClusterConfig> {
    const partitions = options.partitions ?? partitionsDefault;
    return this.adopt(await this.admin({ t: 'add_space', name, partitions, tolerate: options.tolerate ?? 0 }));
  }

  async rmSpace(name: string): Promise<ClusterConfig> {
    return this.adopt(await this.admin({ t: 'rm_space', name }));
  }

  /** Removes a dead server for good; its replicas are rebuilt on the others. */
  async forgetServer(serverId: string): Promise<ClusterConfig> {
    return this.adopt(await this.admin({ t: 'server_forget', serverId }));
  }

  async setReadOnly(readOnly: boolean): Promise<ClusterConfig> {
    return this.adopt(await this.admin({ t: 'set_read_only', readOnly }));
  }

  /** The config plus what is not versioned: the backup lock and each daemon's acknowledged config version. */
  async status(): Promise<ClusterStatus> {
    const status = await this.admin({ t: 'status' });
    this.adopt(status.config);
    return status;
  }

  /**
   * One consistent cut of the whole cluster, driven by the coordinator: freeze writes, snapshot every daemon in
   * parallel, thaw, seal. Resolves with where each snapshot is and the coordinator state at the cut.
   */
  async backup(name: string, options: { owner: string; leaseMs: number; deadlineMs: number; frozenMsMax?: number; lockToken?: string }): Promise<BackupResult> {
    const { owner, leaseMs, deadlineMs, frozenMsMax } = options;
    try {
      return await this.admin(
        { t: 'backup', name, owner, leaseMs, deadlineMs, ...(frozenMsMax !== undefined && { frozenMsMax }), lockToken: options.lockToken ?? null },
        deadlineMs + snapshotSealMsMax, // beyond the deadline, the daemons may still be sealing
      );
    } catch (error) {
      const kvError = asKvError(error);
      // The coordinator running it is gone (killed, or it stepped down): the backup ran there, so it failed.
      if (kvError.code !== 'CONNECTION_LOST') throw kvError;
      throw new KvError(
        'BACKUP_FAILED',
        `backup ${name} failed: the coordinator running it was lost before it answered (${kvError.message}); daemons thaw by their freeze lease, ` +
          `and if it had sealed, kv backup-release ${name} deletes its snapshots`,
      );
    }
  }

  /** Takes the backup lock, or with `renew` renews this caller's (failing if it ended, as with its leader). */
  backupLock(name: string, owner: string, token: string, ttlMs: number, renew = false): Promise<BackupLock> {
    return this.admin({ t: 'backup_lock', name, owner, token, ttlMs, ...(renew && { renew }) });
  }

  async backupUnlock(token: string): Promise<void> {
    await this.admin({ t: 'backup_unlock', token });
  }

  /** Deletes snapshot `name` on every daemon that is connected. */
  backupRelease(name: string): Promise<Results['backup_release']> {
    return this.admin({ t: 'backup_release', name });
  }

  /** Every daemon's snapshots (left by `kv backup`, or by a backup-manager run that died before releasing). */
  listSnapshots(): Promise<Results['list_snapshots']> {
    return this.admin({ t: 'list_snapshots' });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.resubscribeTimer);
    this.coordinator?.close();
    await this.daemons.closeAll();
  }

  // ---- routing ----

  /**
   * Gives the write its sequence number (once: every attempt carries the same one) and sends it. A write that would
   * put more than writeWindowMax numbers between the lowest awaited and the newest waits for the window first.
   */
  private write<T extends WriteRequest>(space: string, key: string, frame: WriteFrameOf<T>): Promise<Results[T]> {
    if (this.nextSeq - this.lowestAwaited >= writeWindowMax) {
      return new Promise<void>((resolve) => this.windowWaiters.push(resolve)).then(() => this.write(space, key, frame));
    }
    const seq = this.nextSeq++;
    this.awaited.add(seq);
    const sent = this.keyed(space, key, (v) => frame(v, seq, this.lowestAwaited));
    // Answered or given up on (its outcome unknown, the caller told so): never sent again, so its record may go.
    // (Bookkeeping beside the caller's promise rather than an async wrapper around it: writes are the hot path.)
    const settled = () => {
      this.awaited.delete(seq);
      if (seq !== this.lowestAwaited) return;
      while (this.lowestAwaited < this.nextSeq && !this.awaited.has(this.lowestAwaited)) this.lowestAwaited++;
      if (this.windowWaiters.length > 0) for (const wake of this.windowWaiters.splice(0)) wake();
    };
    sent.then(settled, settled);
    return sent;
  }

  private keyed<T extends KeyedRequest>(space: string, key: string, frame: FrameOf<T>): Promise<Results[T]> {
    if (typeof key !== 'string') return Promise.reject(badRequest('a key is a string'));
    if (Buffer.byteLength(key) > keyBytesMax) return Promise.reject(badRequest(`keys are at most ${keyBytesMax} bytes`));
    return this.routed(space, key, frame);
  }

  /** The routes of a space by the current config; undefined when the config has no such space. */
  private spaceRoutes(config: ClusterConfig, spaceName: string): SpaceRoutes | undefined {
    if (this.routesConfig !== config) {
      this.routes.clear();
      this.routesConfig = config;
    }
    const known = this.routes.get(spaceName);
    if (known) return known;
    const space = findSpace(config, spaceName);
    if (!space) return undefined;
    const byServer = new Map<string, Route | undefined>();
    const routeTo = (serverId: string | undefined): Route | undefined => {
      if (serverId === undefined) return undefined;
      if (!byServer.has(serverId)) {
        const server = findServer(config, serverId);
        const path = server && daemonPath(server.id, config.incarnation);
        byServer.set(serverId, server?.state === 'available' && path ? { server, path, poolKey: ConnectionPool.key(server.address, path) } : undefined);
      }
      return byServer.get(serverId);
    };
    const routes: SpaceRoutes = {
      partitions: space.partitions.map(({ chain }) => ({ head: routeTo(chain[0]), tail: routeTo(chain[chain.length - 1]) })),
    };
    this.routes.set(spaceName, routes);
    return routes;
  }

  /**
   * Sends one request to the daemon that serves its partition (the key's, or the one given), by the current config,
   * retrying (within the deadline) when the route turns out stale or the daemon cannot be reached before the
   * request was sent.
   */
  private async routed<T extends DataRequest>(spaceName: string, keyOrPartition: string | number, frame: FrameOf<T>): Promise<Results[T]> {
    const deadline = Date.now() + this.timeoutMs;
    let type: T | undefined;
    let backoff = reconnectDelayMsMin / 5;
    let refreshedForSpace = false;
    let lastError: KvError | undefined;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw lastError?.code === 'UNAVAILABLE'
          ? lastError
          : new KvError('TIMEOUT', `${type ?? 'a request'} on "${spaceName}" did not complete within ${this.timeoutMs} ms` +
              (lastError ? ` (last: ${lastError.message})` : ''));
      }
      const config = this.config;
      const request = frame(config.version);
      type = request.t;
      const routes = this.spaceRoutes(config, spaceName);
      if (!routes) {
        if (refreshedForSpace) throw new KvError('NO_SUCH_SPACE', `space "${spaceName}" does not exist`);
        refreshedForSpace = true;
        await this.refreshBy(deadline);
        continue;
      }
      const partition = typeof keyOrPartition === 'string' ? partitionOf(keyOrPartition, routes.partitions.length) : keyOrPartition;
      const routesOfPartition = routes.partitions[partition];
      const route = writeTypes.has(type) ? routesOfPartition?.head : routesOfPartition?.tail;
      if (!route) {
        // Every member down, as the config says: after a coordinator restart or failover every daemon is until it
        // registers again (a moment), so wait for a newer config within the deadline rather than fail at once.
        lastError = new KvError('UNAVAILABLE', `partition ${partition} of "${spaceName}" has no available daemon`);
        await Promise.all([this.refreshBy(deadline), pause(backoff)]);
        backoff = Math.min(backoff * 2, reconnectDelayMsMax / 4);
        continue;
      }
      const { server } = route;
      let connection = this.daemons.ready(route.poolKey);
      if (!connection) {
        try {
          connection = await this.daemons.get(server.address, route.path, remaining);
        } catch (error) {
          // A credential refused now is refused on every attempt.
          if (asKvError(error).code === 'UNAUTHENTICATED') throw error;
          // Its cause (refused, a name that does not resolve, no route) is what the operator can act on.
          lastError = new KvError('UNAVAILABLE', `daemon ${server.id} at ${server.address} cannot be reached: ${asKvError(error).message.replace(/^cannot connect to \S+: /, '')}`);
          await Promise.all([this.refreshBy(deadline), pause(backoff)]);
          backoff = Math.min(backoff * 2, reconnectDelayMsMax / 4);
          continue;
        }
      }
      try {
        return await connection.request(request, remaining);
      } catch (error) {
        const kvError = asKvError(error);
        lastError = kvError;
        switch (kvError.code) {
          case 'STALE_CONFIG':
          case 'WRONG_SERVER':
          case 'NO_SUCH_SPACE':
            if ((kvError.version ?? 0) > config.version) await this.refreshBy(deadline);
            else if (kvError.code === 'NO_SUCH_SPACE') throw kvError;
            else await pause(backoff); // the daemon is behind: give it a moment to receive the config
            backoff = Math.min(backoff * 2, reconnectDelayMsMax / 4);
            continue;
          case 'UNAVAILABLE': // the daemon refused it (shutting down): not applied, safe to send again
            await Promise.all([this.refreshBy(deadline), pause(backoff)]);
            backoff = Math.min(backoff * 2, reconnectDelayMsMax / 4);
            continue;
          case 'CONNECTION_LOST':
            if (!retryableTypes.has(type)) {
              throw new KvError('UNAVAILABLE', `the connection to ${server.address} dropped; the ${type} may or may not have happened`);
            }
            await Promise.all([this.refreshBy(deadline), pause(backoff)]);
            continue;
          default:
            throw kvError;
        }
      }
    }
  }

  private async partitionCount(spaceName: string): Promise<number> {
    let space = findSpace(this.config, spaceName);
    if (!space) {
      await this.refresh();
      space = findSpace(this.config, spaceName);
    }
    if (!space) throw new KvError('NO_SUCH_SPACE', `space "${spaceName}" does not exist`);
    return space.partitions.length;
  }

  // ---- the config ----

  /**
   * Takes a config that is newer than the one routed by. A push may skip versions (each is a whole config, so
   * nothing is lost); the coordinator connection dropping may lose pushes, and `resubscribe` fetches then.
   */
  private adopt(config: ClusterConfig): ClusterConfig {
    if (supersedes(config, this.config) || config.clusterId !== this.config.clusterId) {
      // A daemon the cluster gave up on may be hung with its connections open: stop waiting on them, so what is
      // pending fails now (and is retried along the new chains where that is safe) instead of timing out.
      for (const server of config.servers) {
        const before = findServer(this.config, server.id);
        if (server.state !== 'available' && before?.state === 'available') this.daemons.dropAddress(before.address);
      }
      this.config = config;
    }
    return config;
  }

  private onPush(message: { t: string; config?: ClusterConfig }): void {
    if (message.t === 'config' && message.config) this.adopt(message.config);
  }

  /** Fetches the config now; concurrent callers share one fetch. Never throws: a stale config is retried. */
  private refresh(): Promise<void> {
    this.refreshing ??= this.admin({ t: 'get_config' })
      .then((config) => void this.adopt(config), () => {})
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /**
   * A refresh waited for until `deadline` (Date.now()) at most: one shared with other callers, or the coordinator
   * search under it, may run on past this operation's deadline (no leader answers), and the operation must not.
   */
  private refreshBy(deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
    return Promise.race([this.refresh(), late]).finally(() => clearTimeout(timer));
  }

  /**
   * Sends a request to the coordinator that leads. One answered NOT_LEADER (or, when it may be sent twice, whose
   * connection dropped) drops that connection and goes to the leader found anew, within `timeoutMs` in all.
   */
  private async admin<T extends RequestType>(request: { t: T } & RequestOf<T>, timeoutMs = this.timeoutMs): Promise<Results[T]> {
    const deadline = performance.now() + timeoutMs;
    let backoff: Backoff | undefined;
    for (;;) {
      let connection: Connection | undefined;
      try {
        connection = await this.coordinatorConnection(remainingMs(deadline));
        // A frame of its own for each attempt: the connection sets its id.
        return await connection.request({ ...request }, remainingMs(deadline));
      } catch (error) {
        const kvError = asKvError(error);
        if (!leaderLost(request.t, kvError) || this.closed || performance.now() >= deadline) throw kvError;
        if (connection) this.dropCoordinator(connection);
        backoff ??= new Backoff(reconnectDelayMsMin, reconnectDelayMsMax);
        await pause(backoff.next(remainingMs(deadline)));
      }
    }
  }

  /** Ends a session with a coordinator that no longer leads; what needs the coordinator next finds the leader. */
  private dropCoordinator(connection: Connection): void {
    if (this.coordinator !== connection) return;
    this.coordinator = undefined;
    connection.terminate();
    if (this.options.subscribe !== false) this.resubscribe();
  }

  private adoptCoordinator(connection: Connection): void {
    this.coordinator = connection;
    this.leader = connection.peer;
    // A coordinator whose host died closes nothing: a session silent for this long is dropped and made anew.
    connection.watch(coordinatorPingIntervalMs, coordinatorSilenceMsMax);
    connection.onceClosed(() => {
      if (this.coordinator !== connection) return;
      this.coordinator = undefined;
      if (this.options.subscribe !== false) this.resubscribe();
    });
  }

  /**
   * Pushes stop when the coordinator connection drops: reconnect and subscribe again (whose answer is the current
   * config) at once and then with backoff, until it works or the client closes, without waiting for an operation
   * to fail on a stale route. The timer does not keep the process alive.
   */
  private resubscribe(): void {
    if (this.resubscribing || this.closed) return;
    this.resubscribing = true;
    const attempt = () => {
      if (this.closed) return;
      this.coordinatorConnection().then(
        () => {
          this.resubscribing = false;
          this.resubscribeBackoff.reset();
          if (!this.coordinator) this.resubscribe(); // it dropped again before this ran
        },
        () => {
          if (this.closed) return;
          this.resubscribeTimer = setTimeout(attempt, this.resubscribeBackoff.next());
          this.resubscribeTimer.unref();
        },
      );
    };
    attempt();
  }

  /**
   * The session with the leading coordinator, made anew (and resubscribed) if it dropped, the leader found within
   * `timeoutMs` (callers that come while it is being found wait for that search).
   */
  private coordinatorConnection(timeoutMs = this.timeoutMs): Promise<Connection> {
    if (this.coordinator && !this.coordinator.closed) return Promise.resolve(this.coordinator);
    if (this.closed) return Promise.reject(new KvError('UNAVAILABLE', 'the client is closed'));
    this.reconnecting ??= (async () => {
      const found = { timeoutMs, tls: this.options.tls, preferred: this.leader };
      const connection = await openLeader(this.coordinatorAddresses, (m) => this.onPush(m), found);
      try {
        if (this.options.subscribe !== false) this.adopt(await connection.request({ t: 'subscribe' }, timeoutMs));
      } catch (error) {
        connection.close();
        throw error;
      }
      if (this.closed) {
        connection.close();
        throw new KvError('UNAVAILABLE', 'the client is closed');
      }
      this.adoptCoordinator(connection);
      return connection;
    })().finally(() => (this.reconnecting = undefined));
    return this.reconnecting;
  }
}

// The config in etcd, shared by every coordinator started with the same endpoints and prefix. Under the prefix:
//
//   config           the cluster config (state-file format), written only by fenced transactions
//   leader           the leader's advertised address, put with its lease: create_revision is its epoch
//   members/<addr>   one per running coordinator, with its lease (show-config lists them)
//
// Campaign: `if create_revision(leader) == 0 then put leader (lease), read config` in one transaction; a loser
// watches the leader key and tries again when it is deleted (its lease ran out or was revoked). Every save the
// leader makes compares create_revision(leader) with its epoch and mod_revision(config) with the revision it last
// read or wrote, so a deposed leader (paused, partitioned, or its lease revoked early: etcd 3.4.23 has that bug)
// changes nothing. It also stops acting by its own deadline (leader-lease.ts), not when etcd says so.
import type { ClusterConfig } from '../shared/config.js';
import { KvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { etcdRequestTimeoutMs, leaderLeaseTtlSecondsDefault, reconnectDelayMsMax, reconnectDelayMsMin } from '../shared/limits.js';
import { Backoff } from '../shared/backoff.js';
import { decodeState, encodeState } from '../shared/state-file.js';
import type { ConfigStore, Leadership } from './config-store.js';
import { EtcdClient, EtcdError, prefixEnd } from './etcd-client.js';
import { LeaderLease } from './leader-lease.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  /** Every key of this cluster lives under it; no trailing slash. */
  prefix: string;
  leaseTtlSeconds?: number;
  log: Logger;
}

export class EtcdStore implements ConfigStore {
  private readonly client: EtcdClient;
  private readonly prefix: string;
  private readonly keys: { config: string; leader: string; members: string };
  private readonly ttlSeconds: number;
  private lease: LeaderLease | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private known: { address: string; epoch: number } | undefined;
  /** Whether the last call to etcd failed: logged when that changes, so an outage is one line, not thousands. */
  private unreachable = false;
  private closed = false;

  constructor(private readonly options: EtcdStoreOptions) {
    this.client = new EtcdClient(options.endpoints, { requestTimeoutMs: etcdRequestTimeoutMs });
    this.prefix = options.prefix.replace(/\/+$/, '');
    this.keys = { config: `${this.prefix}/config`, leader: `${this.prefix}/leader`, members: `${this.prefix}/members/` };
    this.ttlSeconds = options.leaseTtlSeconds ?? leaderLeaseTtlSecondsDefault;
  }

  describe() {
    return { kind: 'etcd' as const, endpoints: this.client.endpoints, prefix: this.prefix };
  }

  async restore(config: ClusterConfig): Promise<void> {
    // Only into an empty prefix: no config, no leader, no member. A compare over the whole range holds for an
    // empty one (etcd compares against a zero key then), and for a non-empty one only if every key matches.
    const result = await this.call(() =>
      this.client.txn({
        compare: [{ key: `${this.prefix}/`, rangeEnd: prefixEnd(`${this.prefix}/`), target: 'CREATE', result: 'EQUAL', createRevision: 0 }],
        success: [{ put: { key: this.keys.config, value: Buffer.from(encodeState(config)) } }],
        failure: [{ range: { key: `${this.prefix}/`, rangeEnd: prefixEnd(`${this.prefix}/`), limit: 1 } }],
      }),
    );
    if (!result.succeeded) {
      throw new KvError('DATA_DIR_INVALID', `etcd prefix ${this.prefix} is not empty (it holds another cluster, or this one); restore into a new --prefix`);
    }
  }

  async campaign(self: string, signal: AbortSignal): Promise<Leadership> {
    const backoff = new Backoff(reconnectDelayMsMin, reconnectDelayMsMax);
    for (;;) {
      if (signal.aborted || this.closed) throw new KvError('UNAVAILABLE', 'stopped campaigning');
      try {
        const lease = await this.liveLease();
        await this.client.put(`${this.keys.members}${self}`, JSON.stringify({ address: self }), { lease: lease.id });
        const result = await this.client.txn({
          compare: [{ key: this.keys.leader, target: 'CREATE', result: 'EQUAL', createRevision: 0 }],
          success: [{ put: { key: this.keys.leader, value: self, lease: lease.id } }, { range: { key: this.keys.config } }],
          failure: [{ range: { key: this.keys.leader } }],
        });
        this.reached();
        backoff.reset();
        if (result.succeeded) {
          const epoch = result.header.revision;
          const configKv = result.responses[1]?.range?.kvs[0];
          const stored = configKv ? decodeState(configKv.value, `etcd ${this.keys.config}`) : undefined;
          this.known = { address: self, epoch };
          this.options.log.info({ epoch, prefix: this.prefix }, 'won the leader election');
          return new EtcdLeadership(this, lease, epoch, stored, configKv?.modRevision ?? 0);
        }
        const leaderKv = result.responses[0]?.range?.kvs[0];
        if (!leaderKv) continue; // deleted between the compare and the read: try again at once
        this.known = { address: leaderKv.value.toString(), epoch: leaderKv.createRevision };
        if (leaderKv.lease === lease.id) {
          // Ours, of a leadership this process gave up (its save fenced off or uncertain): make way for a new one.
          await this.client.txn({
            compare: [{ key: this.keys.leader, target: 'CREATE', result: 'EQUAL', createRevision: leaderKv.createRevision }],
            success: [{ deleteRange: { key: this.keys.leader } }],
            failure: [],
          });
          continue;
        }
        await this.untilLeaderGone(result.header.revision, signal);
      } catch (error) {
        if (signal.aborted || this.closed) throw new KvError('UNAVAILABLE', 'stopped campaigning');
        this.failed(error);
        await sleep(backoff.next(), signal);
      }
    }
  }

  leader() {
    return this.known;
  }

  async members(): Promise<string[]> {
    const { kvs } = await this.call(() => this.client.range(this.keys.members, { prefix: true }));
    return kvs.map((kv) => kv.key.toString().slice(this.keys.members.length)).sort();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.keepAlive);
    const lease = this.lease;
    this.lease = undefined;
    // Revoking deletes the leader key (if ours) and the member key now, so a follower takes over at once.
    if (lease?.alive) await this.client.leaseRevoke(lease.id).catch(() => {});
  }

  /** The fenced write of a leadership (EtcdLeadership.save). */
  async fencedPut(epoch: number, modRevision: number, config: ClusterConfig): Promise<{ succeeded: boolean; revision: number }> {
    const result = await this.client.txn({
      compare: [
        { key: this.keys.leader, target: 'CREATE', result: 'EQUAL', createRevision: epoch },
        { key: this.keys.config, target: 'MOD', result: 'EQUAL', modRevision },
      ],
      success: [{ put: { key: this.keys.config, value: Buffer.from(encodeState(config)) } }],
      failure: [],
    });
    return { succeeded: result.succeeded, revision: result.header.revision };
  }

  /** The config as stored now, with its mod_revision (0: none), to settle a save whose outcome is unknown. */
  async readConfig(): Promise<{ value: Buffer | undefined; modRevision: number }> {
    const { kvs } = await this.client.range(this.keys.config);
    return { value: kvs[0]?.value, modRevision: kvs[0]?.modRevision ?? 0 };
  }

  /** Gives the lease up: the leader key and member key go with it. */
  async revoke(lease: LeaderLease): Promise<void> {
    if (this.lease === lease) this.lease = undefined;
    lease.markLost();
    await this.client.leaseRevoke(lease.id).catch(() => {});
  }

  /** Logs etcd coming back after a failure. */
  reached(): void {
    if (!this.unreachable) return;
    this.unreachable = false;
    this.options.log.info({ endpoints: this.client.endpoints }, 'etcd reachable again');
  }

  failed(error: unknown): void {
    if (this.unreachable) return;
    this.unreachable = true;
    this.options.log.warn({ endpoints: this.client.endpoints, err: (error as Error).message }, 'cannot reach etcd; retrying');
  }

  /** The lease this process campaigns and leads with: the current one while alive, else a new one. */
  private async liveLease(): Promise<LeaderLease> {
    if (this.lease?.alive) return this.lease;
    const sentAt = performance.now();
    const granted = await this.client.leaseGrant(this.ttlSeconds);
    const lease = new LeaderLease(granted.id, granted.ttl, sentAt);
    this.lease = lease;
    this.scheduleKeepAlive(lease);
    return lease;
  }

  private scheduleKeepAlive(lease: LeaderLease): void {
    clearTimeout(this.keepAlive);
    this.keepAlive = setTimeout(() => void this.keepLeaseAlive(lease), (lease.ttlSeconds * 1000) / 3);
  }

  /** One keep-alive, then the next one TTL/3 later, while this lease is the one in use and not lost. */
  private async keepLeaseAlive(lease: LeaderLease): Promise<void> {
    if (this.closed || this.lease !== lease) return;
    const sentAt = performance.now();
    try {
      await this.client.leaseKeepAlive(lease.id);
      lease.renewed(sentAt);
      this.reached();
    } catch (error) {
      if (error instanceof EtcdError && error.code === 'LEASE_NOT_FOUND') {
        lease.markLost();
        this.options.log.warn({ lease: lease.id }, 'etcd says the lease is gone');
        return;
      }
      this.failed(error);
    }
    if (this.lease === lease && !this.closed) this.scheduleKeepAlive(lease);
  }

  /**
   * Waits until the leader key is deleted (after `revision`), or for one TTL at most: a watch on an etcd member cut
   * off from its quorum may say nothing, so the key is read again then.
   */
  private async untilLeaderGone(revision: number, signal: AbortSignal): Promise<void> {
    const stop = new AbortController();
    const abort = () => stop.abort();
    signal.addEventListener('abort', abort, { once: true });
    const timer = setTimeout(abort, this.ttlSeconds * 1000);
    try {
      await this.client.watch(this.keys.leader, { startRevision: revision + 1, signal: stop.signal }, (events) => {
        if (events.some((e) => e.type === 'DELETE')) stop.abort();
      });
    } catch (error) {
      if (!stop.signal.aborted) throw error;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    }
  }

  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      this.reached();
      return result;
    } catch (error) {
      this.failed(error);
      throw new KvError('UNAVAILABLE', `etcd: ${(error as Error).message}`);
    }
  }
}

class EtcdLeadership implements Leadership {
  private ended = false;
  private readonly listeners: Array<(why: string) => void> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: EtcdStore,
    private readonly lease: LeaderLease,
    readonly epoch: number,
    readonly stored: ClusterConfig | undefined,
    private modRevision: number,
  ) {
    this.timer = setInterval(() => {
      if (!this.lease.alive) this.end('the leader lease ran out: no keep-alive answered in time');
    }, 50);
  }

  get leading(): boolean {
    if (this.ended) return false;
    if (this.lease.alive) return true;
    this.end('the leader lease ran out: no keep-alive answered in time');
    return false;
  }

  /** How long a read lease the previous leader granted may outlast this one's win (daemon-sessions.ts). */
  get previousLeaderMsMax(): number {
    return this.lease.ttlSeconds * 1000;
  }

  async save(config: ClusterConfig): Promise<void> {
    if (!this.leading) throw new KvError('NOT_LEADER', 'this coordinator no longer leads; nothing was saved');
    let result: { succeeded: boolean; revision: number };
    try {
      result = await this.store.fencedPut(this.epoch, this.modRevision, config);
      this.store.reached();
    } catch (error) {
      this.store.failed(error);
      if (!(error instanceof EtcdError) || error.code !== 'UNCERTAIN') {
        // Never delivered: nothing changed, and the leadership stands.
        throw new KvError('UNAVAILABLE', `cannot save the config in etcd: ${(error as Error).message}`);
      }
      result = await this.settle(config);
    }
    if (!result.succeeded) {
      this.end('a fenced write failed: another coordinator leads, or changed the config');
      throw new KvError('NOT_LEADER', 'this coordinator no longer leads (its write to etcd was fenced off); nothing was saved');
    }
    this.modRevision = result.revision;
  }

  /** A save whose answer was lost: whether it was applied, read back; if that cannot be told, the leadership ends. */
  private async settle(config: ClusterConfig): Promise<{ succeeded: boolean; revision: number }> {
    try {
      const now = await this.store.readConfig();
      if (now.modRevision === this.modRevision) throw new KvError('UNAVAILABLE', 'cannot save the config in etcd (it did not answer); nothing was saved');
      if (now.value && Buffer.compare(now.value, Buffer.from(encodeState(config))) === 0) return { succeeded: true, revision: now.modRevision };
      return { succeeded: false, revision: 0 };
    } catch (error) {
      if (error instanceof KvError) throw error;
      this.end('cannot tell whether a write to etcd was applied');
      throw new KvError('NOT_LEADER', 'this coordinator gave up leading: it cannot tell whether its last write to etcd was applied');
    }
  }

  onEnd(listener: (why: string) => void): void {
    this.listeners.push(listener);
  }

  async resign(): Promise<void> {
    this.end('resigned');
    await this.store.revoke(this.lease);
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    for (const listener of this.listeners) listener(why);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

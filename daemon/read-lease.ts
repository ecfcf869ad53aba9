// The daemon's read lease: reads are answered only while it holds one. A lease is granted by the coordinator's
// answer to a request this daemon sent at local time t0, and runs until
//
//   t0 + heartbeatTimeoutMs × (1 − readLeaseClockRateMargin) − readLeaseMarginMs
//
// on this daemon's monotonic clock. The coordinator received the request after t0 and may declare this daemon
// dead (and give its partitions to others) only after receipt + heartbeatTimeoutMs on its own clock, so the lease
// has run out by then even if the two clocks run at slightly different rates. A grant counts only once this daemon
// runs a config at least as new as the coordinator's at the grant: otherwise a daemon declared dead and back again
// could read by the config that still names it the tail.
import { KvError } from '../shared/errors.js';
import { readLeaseClockRateMargin, readLeaseMarginMs } from '../shared/limits.js';

export interface LeaseGrant {
  /** The coordinator's heartbeat timeout. */
  timeoutMs: number;
  /** The coordinator's config version when it answered. */
  version: number;
}

export class ReadLease {
  /** Monotonic time at which the lease ends; -Infinity before the first grant. */
  private until = -Infinity;
  /** The config version a running config must have reached for the lease to count. */
  private version = Infinity;
  /** When the last lease request that was granted went out, for the refusal's message. */
  private grantedAt: number | undefined;
  /** When the lease was last given up (`revoke`): grants of requests sent before then do not count. */
  private revokedAt = -Infinity;

  constructor(readonly now: () => number = () => performance.now()) {}

  /** Records the coordinator's answer to a lease request sent at `requestedAt` (by `now`). */
  grant(requestedAt: number, grant: LeaseGrant): void {
    const until = requestedAt + grant.timeoutMs * (1 - readLeaseClockRateMargin) - readLeaseMarginMs;
    if (until <= this.until) return; // an answer to an older request, arriving late
    if (requestedAt < this.revokedAt) return; // asked for before it was given up
    this.until = until;
    this.version = grant.version;
    this.grantedAt = requestedAt;
  }

  /**
   * Gives the lease up at once (the coordinator asks, before it drops this daemon from chains it still reaches:
   * coordinator/cut-reports.ts). No answer to a request sent before now renews it.
   */
  revoke(): void {
    this.until = -Infinity;
    this.revokedAt = this.now();
  }

  /** Whether reads may be answered now by a daemon running config `runningVersion`. */
  holds(runningVersion: number | undefined): boolean {
    return runningVersion !== undefined && runningVersion >= this.version && this.now() < this.until;
  }

  /** Throws the refusal a client retries elsewhere (after refreshing its config) unless the lease holds. */
  check(runningVersion: number | undefined): void {
    if (this.holds(runningVersion)) return;
    if (this.grantedAt === undefined) {
      throw new KvError('UNAVAILABLE', 'this daemon holds no read lease yet (the coordinator has not granted one); ask the coordinator for the partition\'s tail');
    }
    if (this.grantedAt < this.revokedAt) {
      throw new KvError('UNAVAILABLE', 'this daemon gave up its read lease: another daemon reported it unreachable; ask the coordinator for the partition\'s current tail');
    }
    if (this.now() >= this.until) {
      const silentMs = Math.round(this.now() - this.grantedAt);
      throw new KvError('UNAVAILABLE', `this daemon's read lease lapsed (no lease from the coordinator for ${silentMs} ms); ask the coordinator for the partition's current tail`);
    }
    throw new KvError('UNAVAILABLE', `this daemon's read lease waits for config ${this.version} (it runs ${runningVersion ?? 'none'}); ask the coordinator for the partition's current tail`);
  }
}

// How long a coordinator may act on its etcd lease. It is granted for `ttl` seconds and renewed by keep-alives
// every ttl/3; etcd lets it run out `ttl` after the last keep-alive it received, which came after this process sent
// it. So this process leads until
//
//   (send time of the last good keep-alive) + ttl × (1 − readLeaseClockRateMargin) − leaderStepDownMarginMs
//
// on its own monotonic clock, whatever the client library or etcd say meanwhile: a keep-alive black-holed, a
// process paused, or an answer lost all end it by the clock. Pure but for the clock, so it is a unit test.
import { leaderStepDownMarginMs, readLeaseClockRateMargin } from '../shared/limits.js';

export class LeaderLease {
  private deadline: number;
  private lost = false;

  /** `grantSentAt`: when the grant request went out (by `now`). */
  constructor(
    readonly id: string,
    readonly ttlSeconds: number,
    grantSentAt: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.deadline = this.until(grantSentAt);
  }

  private until(sentAt: number): number {
    return sentAt + this.ttlSeconds * 1000 * (1 - readLeaseClockRateMargin) - leaderStepDownMarginMs;
  }

  /** A keep-alive sent at `sentAt` was answered with the lease alive. */
  renewed(sentAt: number): void {
    if (!this.lost) this.deadline = Math.max(this.deadline, this.until(sentAt));
  }

  /** etcd says the lease is gone (expired, revoked): no keep-alive brings it back. */
  markLost(): void {
    this.lost = true;
  }

  get alive(): boolean {
    return !this.lost && this.now() < this.deadline;
  }

  /** Milliseconds until the deadline (≤ 0: passed). */
  get remainingMs(): number {
    return this.lost ? 0 : this.deadline - this.now();
  }
}

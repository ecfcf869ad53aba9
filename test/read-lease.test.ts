// The daemon's read lease (daemon/read-lease.ts), on a clock the test drives.
import t from 'tap';
import { ReadLease } from '../daemon/read-lease.js';
import { readLeaseClockRateMargin, readLeaseMarginMs } from '../shared/limits.js';

const timeoutMs = 1_500;
const leaseMs = timeoutMs * (1 - readLeaseClockRateMargin) - readLeaseMarginMs;

function leaseAt(start: number) {
  const clock = { now: start };
  return { clock, lease: new ReadLease(() => clock.now) };
}

t.test('no lease before the first grant', async (t) => {
  const { lease } = leaseAt(0);
  t.notOk(lease.holds(5));
  t.throws(() => lease.check(5), { code: 'UNAVAILABLE', message: /no read lease yet/ });
});

t.test('a grant runs from when the request was sent, shorter than the timeout by the margins', async (t) => {
  const { clock, lease } = leaseAt(1_000);
  const sentAt = clock.now;
  clock.now += 300; // the answer took 300 ms: that time is not added to the lease
  lease.grant(sentAt, { timeoutMs, version: 7 });
  t.ok(lease.holds(7), 'held right after the answer');
  t.ok(leaseMs < timeoutMs && leaseMs > 0, `${leaseMs} ms out of a ${timeoutMs} ms timeout`);
  clock.now = sentAt + leaseMs - 1;
  t.ok(lease.holds(7), 'held until just before it ends');
  clock.now = sentAt + leaseMs;
  t.notOk(lease.holds(7), 'gone when it ends');
  t.throws(() => lease.check(7), { code: 'UNAVAILABLE', message: /read lease lapsed/ });
});

t.test('a grant counts only once the daemon runs the config the coordinator had', async (t) => {
  const { clock, lease } = leaseAt(0);
  lease.grant(clock.now, { timeoutMs, version: 9 });
  t.notOk(lease.holds(8), 'not while the daemon runs an older config');
  t.throws(() => lease.check(8), { code: 'UNAVAILABLE', message: /waits for config 9/ });
  t.notOk(lease.holds(undefined), 'nor with no config at all');
  t.ok(lease.holds(9));
  t.ok(lease.holds(10));
});

t.test('renewals extend the lease; a late answer to an older request does not shorten it', async (t) => {
  const { clock, lease } = leaseAt(0);
  lease.grant(0, { timeoutMs, version: 1 });
  clock.now = 200;
  lease.grant(200, { timeoutMs, version: 2 });
  lease.grant(100, { timeoutMs, version: 1 }); // answered after the newer one
  clock.now = 200 + leaseMs - 1;
  t.ok(lease.holds(2), 'runs from the newest request');
  clock.now = 200 + leaseMs;
  t.notOk(lease.holds(2), 'and lapses without further renewals');
});

t.test('a revoked lease ends at once, and no answer to an earlier request renews it', async (t) => {
  const clock = { now: 0 };
  const lease = new ReadLease(() => clock.now);
  lease.grant(0, { timeoutMs: 3_000, version: 1 });
  clock.now = 100;
  t.ok(lease.holds(1));
  lease.revoke();
  t.notOk(lease.holds(1), 'gone at once');
  t.throws(() => lease.check(1), /gave up its read lease/);
  lease.grant(50, { timeoutMs: 3_000, version: 1 }); // asked before the revocation, answered after
  t.notOk(lease.holds(1), 'a late grant does not count');
  clock.now = 200;
  lease.grant(150, { timeoutMs: 3_000, version: 1 });
  t.ok(lease.holds(1), 'a grant asked for afterwards does');
});

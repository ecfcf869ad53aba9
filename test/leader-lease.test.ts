// The leader's own deadline (coordinator/leader-lease.ts): counted from the send time of the last keep-alive that
// was answered, never from when the answer came, and gone for good once etcd says the lease is.
import t from 'tap';
import { LeaderLease } from '../coordinator/leader-lease.js';
import { leaderStepDownMarginMs, readLeaseClockRateMargin } from '../shared/limits.js';

const ttl = 2;
const span = ttl * 1000 * (1 - readLeaseClockRateMargin) - leaderStepDownMarginMs;

t.test('alive until the grant send time + TTL − margin', async (t) => {
  let now = 1000;
  const lease = new LeaderLease('7', ttl, 900, () => now);
  t.ok(lease.alive);
  now = 900 + span - 1;
  t.ok(lease.alive, 'just before the deadline');
  now = 900 + span;
  t.notOk(lease.alive, 'at the deadline: steps down, though nothing said the lease was lost');
});

t.test('a keep-alive counts from when it was sent, and an older answer arriving late changes nothing', async (t) => {
  let now = 0;
  const lease = new LeaderLease('7', ttl, 0, () => now);
  now = 1500;
  lease.renewed(600); // sent at 600, answered at 1500 (a slow etcd)
  t.equal(lease.remainingMs, 600 + span - 1500, 'deadline from the send time');
  lease.renewed(100); // an answer to an older keep-alive
  t.equal(lease.remainingMs, 600 + span - 1500, 'not moved back');
  now = 600 + span;
  t.notOk(lease.alive);
});

t.test('lost: no later keep-alive revives it', async (t) => {
  let now = 0;
  const lease = new LeaderLease('7', ttl, 0, () => now);
  lease.markLost();
  t.notOk(lease.alive);
  now = 10;
  lease.renewed(10);
  t.notOk(lease.alive, 'still gone');
  t.equal(lease.remainingMs, 0);
});

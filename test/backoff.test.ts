// Reconnect waits (shared/backoff.ts): short at first, doubling, capped, jittered.
import t from 'tap';
import { Backoff } from '../shared/backoff.js';

t.test('waits grow from below the minimum to the cap, and start over after a reset', async (t) => {
  const highest = new Backoff(50, 2_000, () => 0.999999);
  const ceilings = Array.from({ length: 8 }, () => highest.next());
  t.same(ceilings, [49, 99, 199, 399, 799, 1599, 1999, 1999]);
  highest.reset();
  t.equal(highest.next(), 49, 'short again after a reset');
  t.equal(new Backoff(50, 2_000, () => 0).next(), 0, 'the first retry may go at once');
});

t.test('a smaller cap per call wins', async (t) => {
  const b = new Backoff(50, 2_000, () => 0.999999);
  for (let i = 0; i < 6; i++) b.next(200);
  t.equal(b.next(200), 199);
});

t.test('jitter spreads the waits', async (t) => {
  const b = new Backoff(50, 2_000);
  const waits = new Set(Array.from({ length: 50 }, () => { b.reset(); b.next(); return b.next(); }));
  t.ok(waits.size > 10, `${waits.size} distinct second waits out of 50`);
  t.ok([...waits].every((w) => w >= 0 && w < 100));
});

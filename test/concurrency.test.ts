// Many operations in flight on one client: nothing lost, per-key writes linearizable.
import t from 'tap';
import { startCluster } from './helpers/cluster.js';

t.test('10,000 concurrent operations from one client lose nothing', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client({ timeoutMs: 60_000 });
  await client.addSpace('load', { partitions: 16 });

  const n = 10_000;
  const puts = await Promise.allSettled(Array.from({ length: n }, (_, i) => client.put('load', `k${i}`, { i })));
  t.equal(puts.filter((p) => p.status === 'rejected').length, 0, 'every put succeeded');
  const gets = await Promise.all(Array.from({ length: n }, (_, i) => client.get('load', `k${i}`)));
  t.equal(gets.filter((v, i) => v?.i !== i).length, 0, 'every value reads back');
  t.equal(await client.count('load'), n, 'count sees all of them');

  // Interleaved reads and writes on the same keys, all at once.
  const mixed = await Promise.allSettled(
    Array.from({ length: n }, (_, i) =>
      i % 2 === 0 ? client.put('load', `k${i % 100}`, { i }) : client.get('load', `k${i % 100}`),
    ),
  );
  t.equal(mixed.filter((p) => p.status === 'rejected').length, 0, 'a mixed burst has no failures');
});

t.test('concurrent atomic_add and cond_put on one key are linearizable', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('counters', { partitions: 4 });

  await Promise.all(Array.from({ length: 2_000 }, () => client.atomicAdd('counters', 'hits', { n: 1 })));
  t.same(await client.get('counters', 'hits'), { n: 2_000 }, 'no increment lost or doubled');

  // Every writer tries to move version 0 -> 1; exactly one may win.
  await client.put('counters', 'lock', { version: 0 });
  const attempts = await Promise.allSettled(
    Array.from({ length: 200 }, (_, i) => client.condPut('counters', 'lock', { version: 0 }, { version: 1, owner: i })),
  );
  t.equal(attempts.filter((a) => a.status === 'fulfilled').length, 1, 'exactly one cond_put wins');
  t.ok(
    attempts.every((a) => a.status === 'fulfilled' || (a.reason as { code?: string }).code === 'CONDITION_FAILED'),
    'the others fail with CONDITION_FAILED',
  );
});

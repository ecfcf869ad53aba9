import t from 'tap';
import { kv, startCluster } from './helpers/cluster.js';

t.test('read-only refuses writes and serves reads; read-write restores writes', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  await client.put('s', 'a', { v: 1 });

  const ro = await kv(t, ['set-read-only', '--coordinator', cluster.coordinator.address]);
  t.equal(ro.code, 0, ro.stderr);
  t.equal((await client.showConfig()).readOnly, true);

  for (const write of <Array<() => Promise<unknown>>>[
    () => client.put('s', 'a', { v: 2 }),
    () => client.del('s', 'a'),
    () => client.putIfNotExist('s', 'b', {}),
    () => client.condPut('s', 'a', { v: 1 }, { v: 3 }),
    () => client.atomicAdd('s', 'a', { v: 1 }),
  ]) {
    await t.rejects(write(), { code: 'READ_ONLY' });
  }
  t.same(await client.get('s', 'a'), { v: 1 }, 'reads go on, and nothing was written');
  t.equal(await client.count('s'), 1);
  const cliPut = await kv(t, ['put', 's', 'a', '{"v":9}', '--coordinator', cluster.coordinator.address]);
  t.equal(cliPut.code, 5, 'kv put exits 5 on a read-only cluster');
  t.match(cliPut.stderr, /read-only/);

  const rw = await kv(t, ['set-read-write', '--coordinator', cluster.coordinator.address]);
  t.equal(rw.code, 0, rw.stderr);
  await client.put('s', 'a', { v: 2 });
  t.same(await client.get('s', 'a'), { v: 2 }, 'writes work again');
});

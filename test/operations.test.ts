// Every data operation, round trip, across a 3-daemon cluster.
import t from 'tap';
import { startCluster } from './helpers/cluster.js';
import { partitionOf } from '../shared/partition.js';

t.test('every operation round-trips across three daemons', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client();
  await client.addSpace('users', { partitions: 12 });

  const config = client.currentConfig;
  const owners = new Set(config.spaces[0]!.partitions.map((p) => p.chain[0]));
  t.equal(owners.size, 3, 'partitions are spread over all three daemons');

  const keys = Array.from({ length: 60 }, (_, i) => `user-${i}`);
  const touched = new Set(keys.map((k) => config.spaces[0]!.partitions[partitionOf(k, 12)]!.chain[0]));
  t.equal(touched.size, 3, 'the keys land on every daemon');

  await Promise.all(keys.map((key, i) => client.put('users', key, { name: key, n: i, bin: Buffer.from([i]), ok: true, gone: null })));
  const values = await Promise.all(keys.map((key) => client.get('users', key)));
  values.forEach((value, i) => {
    t.same(value && { ...value, bin: Buffer.from(value.bin as Uint8Array) }, { name: keys[i], n: i, bin: Buffer.from([i]), ok: true, gone: null });
  });

  t.equal(await client.get('users', 'nobody'), undefined, 'get of a missing key is undefined');

  await client.put('users', 'user-1', { extra: 'x' });
  t.same(await client.get('users', 'user-1'), { name: 'user-1', n: 1, bin: Buffer.from([1]), ok: true, gone: null, extra: 'x' }, 'put keeps the other attributes');

  t.equal(await client.del('users', 'user-0'), true, 'del of a present key says it existed');
  t.equal(await client.del('users', 'user-0'), false, 'del of an absent key says so');
  t.equal(await client.get('users', 'user-0'), undefined);

  await client.putIfNotExist('users', 'fresh', { a: 1 });
  await t.rejects(client.putIfNotExist('users', 'fresh', { a: 2 }), { code: 'CONDITION_FAILED' });
  t.same(await client.get('users', 'fresh'), { a: 1 });

  await client.condPut('users', 'fresh', { a: 1 }, { a: 2, b: 'y' });
  await t.rejects(client.condPut('users', 'fresh', { a: 1 }, { a: 3 }), { code: 'CONDITION_FAILED' });
  await t.rejects(client.condPut('users', 'absent', { a: 1 }, { a: 3 }), { code: 'CONDITION_FAILED' });
  t.same(await client.get('users', 'fresh'), { a: 2, b: 'y' });

  t.same(await client.atomicAdd('users', 'counter', { hits: 5, misses: -1 }), { hits: 5, misses: -1 });
  t.same(await client.atomicAdd('users', 'counter', { hits: 2.5 }), { hits: 7.5, misses: -1 });
  await t.rejects(client.atomicAdd('users', 'fresh', { b: 1 }), { code: 'BAD_REQUEST' }, 'adding to a string is refused');

  t.equal(await client.count('users'), 59 + 2, 'count sees every key on every daemon');
  const scanned = [];
  for await (const [key] of client.scan('users', 7)) scanned.push(key);
  t.equal(scanned.length, 61, 'scan streams every key, page by page');
  t.equal(new Set(scanned).size, 61, 'scan returns each key once');

  await t.rejects(client.get('nope', 'k'), { code: 'NO_SUCH_SPACE' });
  await t.rejects(client.put('nope', 'k', {}), { code: 'NO_SUCH_SPACE' });
  await t.rejects(client.count('nope'), { code: 'NO_SUCH_SPACE' });
});

t.test('a removed space loses its data, and a new space of the same name starts empty', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client();
  await client.addSpace('tmp', { partitions: 4 });
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.put('tmp', `k${i}`, { i })));
  t.equal(await client.count('tmp'), 50);
  await client.rmSpace('tmp');
  await t.rejects(client.get('tmp', 'k1'), { code: 'NO_SUCH_SPACE' });
  await client.addSpace('tmp', { partitions: 4 });
  t.equal(await client.count('tmp'), 0, 'the new space does not see the old data');
  t.equal(await client.get('tmp', 'k1'), undefined);
});

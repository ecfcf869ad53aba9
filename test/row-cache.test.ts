// daemon/row-cache.ts: the daemon's bounded, least-recently-used cache of stored values. Pure; no servers.
// (That it stays coherent with LevelDB is what the operations, replication and backup tests check end to end.)
import t from 'tap';
import { RowCache, own } from '../daemon/row-cache.js';

const value = (n: number, fill = 1) => Buffer.alloc(n, fill);
const entryBytes = (id: string, bytes: number) => id.length + bytes + 160;

t.test('what was set is returned until deleted or cleared', async (t) => {
  const cache = new RowCache(1 << 20);
  cache.set('a', value(10, 7));
  t.same(cache.get('a'), value(10, 7));
  t.equal(cache.get('b'), undefined, 'a miss');
  cache.set('a', value(3, 9));
  t.same(cache.get('a'), value(3, 9), 'a newer value replaces the old one');
  cache.delete('a');
  t.equal(cache.get('a'), undefined, 'deleted');
  cache.set('b', value(1));
  cache.clear();
  t.equal(cache.get('b'), undefined, 'cleared');
});

t.test('it stays within its bytes, dropping the least recently used first', async (t) => {
  const cache = new RowCache(3 * entryBytes('k0', 100));
  cache.set('k0', value(100));
  cache.set('k1', value(100));
  cache.set('k2', value(100));
  t.ok(cache.get('k0'), 'k0 read: now the most recently used');
  cache.set('k3', value(100));
  t.equal(cache.get('k1'), undefined, 'k1, least recently used, went first');
  t.ok(cache.get('k0'));
  t.ok(cache.get('k2'));
  t.ok(cache.get('k3'));
  cache.set('huge', value(4 * entryBytes('k0', 100)));
  t.equal(cache.get('huge'), undefined, 'a value larger than the whole cache is not kept');
  t.ok(cache.get('k3'), 'and does not push others out');
});

t.test('replacing or deleting an entry gives its bytes back', async (t) => {
  const cache = new RowCache(2 * entryBytes('x', 100));
  cache.set('x', value(100));
  for (let i = 0; i < 50; i++) cache.set('x', value(100, i)); // the same key, many times
  cache.set('y', value(100));
  t.ok(cache.get('x'), 'replacing x did not count its bytes twice');
  t.ok(cache.get('y'));
  cache.delete('x');
  cache.set('z', value(100));
  t.ok(cache.get('y'), 'the deleted entry made room');
  t.ok(cache.get('z'));
});

t.test('own copies views into larger buffers, and only those', async (t) => {
  const whole = Buffer.alloc(100, 5);
  t.equal(own(whole), whole, 'a buffer of its own is kept as it is');
  const view = whole.subarray(10, 20);
  const copy = own(view);
  t.not(copy, view);
  t.same(copy, view, 'same bytes');
  t.equal(copy.buffer.byteLength, 10, 'in a buffer of exactly its size');
});

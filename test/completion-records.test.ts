// Exactly-once writes at one daemon: the real write queue on a real LevelDB, with the wall clock injected. A write
// sent again with its request id changes nothing and answers what the first attempt answered, whether the first
// attempt is in the same batch, an earlier one, or from before a restart; records are dropped below what the
// session still awaits, and when the session has been idle too long.
import t from 'tap';
import { join } from 'node:path';
import { Storage } from '../daemon/storage.js';
import { WriteQueue, type RequestId, type Write } from '../daemon/write-queue.js';
import * as attributes from '../daemon/attributes.js';
import { dataKey, recordRange } from '../shared/key-layout.js';
import { keyRecordsMax, sessionIdleMsMax, sessionSweepIntervalMs, writeWindowMax } from '../shared/limits.js';
import { decodeStored } from '../daemon/stored-value.js';
import type { Attrs } from '../shared/protocol.js';
import { tempDir, type TestLike } from './helpers/cluster.js';

const session = Buffer.from('00112233445566aa', 'hex');
const rid = (seq: number, awaiting = seq): RequestId => ({ session, sessionHex: session.toString('hex'), seq, awaiting });
const add = (key: string, seq: number, awaiting = seq): Write => ({
  key: dataKey(1, 0, key),
  apply: (current: Attrs | undefined) => {
    const value = attributes.atomicAdd(current, { n: 1 });
    return { value, result: value };
  },
  rid: rid(seq, awaiting),
});

async function open(t: TestLike, dir: string, clock = { ms: 1_000_000 }) {
  const storage = await Storage.open(dir);
  const writes = new WriteQueue(1, 0, storage, { valueBytesMax: () => 1 << 20, nowMs: () => clock.ms });
  const records = async () => (await storage.db.keys(recordRange(1, 0)).all()).length;
  return { storage, writes, records, clock, close: () => storage.close() };
}

t.test('a write sent again answers the first result and applies once', async (t) => {
  const d = await open(t, join(tempDir(t), 'd'));
  t.teardown(d.close);
  t.same(await d.writes.submit(add('k', 1)), { n: 1 });
  t.same(await d.writes.submit(add('k', 1)), { n: 1 }, 'the second attempt answers the first one\'s result');
  t.same(d.storage.get(dataKey(1, 0, 'k')), { n: 1 }, 'and the counter moved once');
  t.same(await d.writes.submit(add('k', 2)), { n: 2 }, 'the next write applies');

  // Both attempts in one batch (a retry racing its original).
  const [a, b] = await Promise.all([d.writes.submit(add('j', 3)), d.writes.submit(add('j', 3))]);
  t.same([a, b], [{ n: 1 }, { n: 1 }], 'attempts in the same batch: one effect, one result');
  t.same(d.storage.get(dataKey(1, 0, 'j')), { n: 1 });
});

t.test('a write that failed is not recorded: its retry runs afresh', async (t) => {
  const d = await open(t, join(tempDir(t), 'd'));
  t.teardown(d.close);
  const condPut = (seq: number, expect: Attrs): Write => ({
    key: dataKey(1, 0, 'c'),
    apply: (current) => ({ value: attributes.condPut(current, expect, { v: 2 }), result: null }),
    rid: rid(seq, 1),
  });
  await d.writes.submit({ key: dataKey(1, 0, 'c'), apply: () => ({ value: { v: 1 }, result: null }), rid: rid(1) });
  await t.rejects(d.writes.submit(condPut(2, { v: 0 })), { code: 'CONDITION_FAILED' });
  t.equal(await d.records(), 0, 'the applied write\'s record is its value; the failed one made none');
  t.same(await d.writes.submit(condPut(2, { v: 1 })), null, 'sent again, it runs afresh (and now holds)');
  t.same(d.storage.get(dataKey(1, 0, 'c')), { v: 2 });
});

t.test('records survive a restart', async (t) => {
  const dir = join(tempDir(t), 'd');
  const first = await open(t, dir);
  t.same(await first.writes.submit(add('k', 7, 1)), { n: 1 });
  await first.close();
  const second = await open(t, dir);
  t.teardown(second.close);
  t.same(await second.writes.submit(add('k', 7, 1)), { n: 1 }, 'the record was on disk');
  t.same(second.storage.get(dataKey(1, 0, 'k')), { n: 1 });
});

t.test('records go once the session no longer awaits them, or has been idle too long', async (t) => {
  const d = await open(t, join(tempDir(t), 'd'));
  t.teardown(d.close);
  for (let seq = 1; seq <= 5; seq++) await d.writes.submit(add('k', seq, 1));
  t.equal(await d.records(), 4, 'five writes to one key, none answered as far as the daemon knows: the value holds the last one\'s record, the four it overwrote have their own');
  await d.writes.submit(add('k', 6, 4));
  t.equal(await d.records(), 2, 'the session awaits 4 and up: the records of 1-3 are gone; 4 and 5 stay');
  t.same(await d.writes.submit(add('k', 5, 4)), { n: 5 }, 'a record it still awaits answers as before');
  t.same(await d.writes.submit(add('k', 6, 4)), { n: 6 }, 'and so does the value\'s own');
  await d.writes.submit(add('k', 7, 7));
  t.equal(await d.records(), 0, 'a write that awaits only itself: nothing older is kept, and its own record is the value');

  const other = Buffer.from('ffffffffffffffff', 'hex');
  await d.writes.submit(add('k', 8, 1));
  t.equal(await d.records(), 1, 'overwriting a value whose writer may still be sent again: that writer gets a record of its own');
  d.clock.ms += sessionIdleMsMax + sessionSweepIntervalMs;
  await d.writes.submit({ ...add('x', 1), rid: { session: other, sessionHex: other.toString('hex'), seq: 1, awaiting: 1 } });
  t.equal(await d.records(), 0, 'a write of another session, past the idle time: the idle session\'s records are gone');
});

t.test('a write outside its session\'s window is refused', async (t) => {
  const d = await open(t, join(tempDir(t), 'd'));
  t.teardown(d.close);
  await t.rejects(d.writes.submit(add('k', writeWindowMax + 1, 1)), { code: 'BAD_REQUEST' });
  await t.rejects(d.writes.submit(add('k', 3, 4)), { code: 'BAD_REQUEST' }, 'awaiting above its own number');
  t.equal(d.storage.get(dataKey(1, 0, 'k')), undefined, 'neither applied');
});

t.test('changes from a predecessor carry records: the next head knows what was applied', async (t) => {
  const head = await open(t, join(tempDir(t), 'head'));
  t.teardown(head.close);
  const committed: Array<[Buffer, Buffer | undefined]> = [];
  const withReplica = new WriteQueue(1, 0, head.storage, { valueBytesMax: () => 1 << 20, nowMs: () => head.clock.ms }, async (changes) => {
    committed.push(...changes);
  });
  t.same(await withReplica.submit(add('k', 1)), { n: 1 });
  t.equal(committed.length, 1, 'the batch sent on holds the value, which carries its record');

  const next = await open(t, join(tempDir(t), 'next'));
  t.teardown(next.close);
  await next.writes.replicated(committed, 'chain');
  const resent: Array<[Buffer, Buffer | undefined]> = [];
  const nextHead = new WriteQueue(1, 0, next.storage, { valueBytesMax: () => 1 << 20, nowMs: () => next.clock.ms }, async (changes) => {
    resent.push(...changes);
  });
  t.same(await nextHead.submit(add('k', 1)), { n: 1 }, 'the successor, now head, answers the first result');
  t.same(next.storage.get(dataKey(1, 0, 'k')), { n: 1 }, 'and does not apply it again');
  t.ok(resent.some(([key]) => key.equals(dataKey(1, 0, 'k'))), 'the answer waited for the key\'s current value to go down the chain again');
});

t.test('a deletion keeps its record in the record range: sent again, it answers its first result', async (t) => {
  const d = await open(t, join(tempDir(t), 'd'));
  t.teardown(d.close);
  await d.writes.submit(add('k', 1));
  const del = (seq: number): Write => ({
    key: dataKey(1, 0, 'k'),
    apply: (current) => ({ value: undefined, result: current !== undefined }),
    rid: rid(seq, 2),
  });
  t.equal(await d.writes.submit(del(2)), true, 'the key existed');
  t.equal(await d.writes.submit(del(2)), true, 'sent again: the first answer, though the key is gone now');
  t.equal(await d.records(), 1, 'its record is the only one');
});

t.test('a key overwritten while earlier writers may be sent again keeps their records with it, up to keyRecordsMax', async (t) => {
  const d = await open(t, join(tempDir(t), 'd'));
  t.teardown(d.close);
  const key = dataKey(1, 0, 'p');
  const put = (seq: number, awaiting = 1): Write => ({ key, apply: (current) => ({ value: attributes.merge(current, { v: seq }), result: null }), rid: rid(seq, awaiting) });
  const kept = () => decodeStored(d.storage.getRaw(key)!).earlier.map((writer) => writer.seq);
  for (let seq = 1; seq <= 5; seq++) await d.writes.submit(put(seq));
  t.equal(await d.records(), 0, 'five puts, none answered as far as the daemon knows: no record of its own');
  t.same(kept(), [4, 3, 2, 1], 'the value keeps the four it overwrote, newest first');
  t.equal(await d.writes.submit(put(2)), null, 'an overwritten put sent again answers its result');
  t.same(d.storage.get(key), { v: 5 }, 'and does not undo the later ones');
  await d.writes.submit(put(6, 3));
  t.same(kept(), [5, 4, 3], 'the session awaits 3 and up: 1 and 2 are dropped with the next write');
  for (let seq = 7; seq <= 7 + keyRecordsMax; seq++) await d.writes.submit(put(seq, 3));
  t.equal(kept().length, keyRecordsMax, `at most ${keyRecordsMax} stay with the key`);
  t.equal(await d.records(), 4, 'the oldest beyond that (3-6) have records of their own');
  t.equal(await d.writes.submit(put(3, 3)), null, 'a spilled one sent again still answers');
  t.same(d.storage.get(key), { v: 7 + keyRecordsMax });

  await d.writes.submit({ key, apply: () => ({ value: undefined, result: true }), rid: rid(100, 3) });
  t.equal(await d.records(), 4 + 1 + keyRecordsMax + 1, 'a deletion leaves no value: the kept records move to the record range, with its own');
  t.equal(await d.writes.submit(put(8, 3)), null, 'a put kept by the deleted value, sent again, answers');
  t.equal(d.storage.get(key), undefined, 'and does not bring the key back');
});

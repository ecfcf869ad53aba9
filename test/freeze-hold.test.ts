// What a backup's freeze holds on one daemon: every piece of work that starts a change to partition data here
// (client writes, transfer pages this daemon sends, partition and space drops) waits until the thaw, in order;
// what comes from upstream work admitted before the freeze (changes from the predecessor, transfer pages received)
// is applied, and the quiesce point waits for it. After the quiesce nothing writes the partitions until the thaw,
// which is what makes every capture of the freeze one consistent cut. Real write queue on a real LevelDB.
import t from 'tap';
import { join } from 'node:path';
import { Storage } from '../daemon/storage.js';
import { Replicas } from '../daemon/replicas.js';
import type { Write } from '../daemon/write-queue.js';
import { createLogger } from '../shared/log.js';
import { pack } from '../shared/codec.js';
import { dataKey } from '../shared/key-layout.js';
import { tempDir, waitFor } from './helpers/cluster.js';

const session = Buffer.from('0102030405060708', 'hex');
const put = (partition: number, key: string, n: number, seq: number): Write => ({
  key: dataKey(1, partition, key),
  apply: () => ({ value: { n }, result: null }),
  rid: { session, sessionHex: session.toString('hex'), seq, awaiting: 1 },
});

t.test('a freeze holds client writes, sent pages and drops; it lets changes from upstream through', async (t) => {
  const storage = await Storage.open(join(tempDir(t), 'd'));
  t.teardown(() => storage.close());
  const replicas = new Replicas({ storage, env: { valueBytesMax: () => 1 << 20, nowMs: Date.now }, log: createLogger('test', 'silent') });
  await replicas.of(1, 0).submit(put(0, 'a', 1, 1));
  await replicas.of(1, 1).submit(put(1, 'b', 1, 2));

  await replicas.hold();
  const ran: string[] = [];
  const client = replicas.of(1, 0).submit(put(0, 'a', 2, 3)).then(() => ran.push('client write'));
  const sent = replicas.of(1, 1).exclusive(async () => void ran.push('transfer page sent'), { writes: false, held: true });
  const drop = replicas.of(1, 1).exclusive(async () => {
    await storage.clearPartition(1, 1);
    ran.push('partition drop');
  }, { writes: true, held: true });
  const dropSpace = replicas.whenNotFrozen(async () => void ran.push('space drop'));
  await replicas.of(1, 2).replicated([[dataKey(1, 2, 'c'), pack({ n: 7 })]], 'chain');
  await replicas.of(1, 3).exclusive(() => storage.write([[dataKey(1, 3, 'd'), pack({ n: 8 })]]), { writes: true, held: false });
  t.same(storage.get(dataKey(1, 2, 'c')), { n: 7 }, 'a change from the predecessor is applied while frozen');
  t.same(storage.get(dataKey(1, 3, 'd')), { n: 8 }, 'so is a transfer page received');
  await replicas.idle();
  t.same(ran, [], 'nothing held has run');
  t.same(storage.get(dataKey(1, 0, 'a')), { n: 1 }, 'the held write has not changed the value');
  t.same(storage.get(dataKey(1, 1, 'b')), { n: 1 }, 'the held drop has not dropped the partition');

  t.equal(replicas.release(), 4, 'four held pieces of work');
  await Promise.all([client, sent, drop, dropSpace]);
  t.same(ran.sort(), ['client write', 'partition drop', 'space drop', 'transfer page sent'], 'all ran after the thaw');
  t.same(storage.get(dataKey(1, 0, 'a')), { n: 2 });
  t.equal(storage.get(dataKey(1, 1, 'b')), undefined);
});

t.test('the quiesce point waits for a page this daemon sent before the freeze', async (t) => {
  const storage = await Storage.open(join(tempDir(t), 'd'));
  t.teardown(() => storage.close());
  const replicas = new Replicas({ storage, env: { valueBytesMax: () => 1 << 20, nowMs: Date.now }, log: createLogger('test', 'silent') });
  let answer!: () => void;
  let pageOut = false;
  const sending = replicas.of(1, 0).exclusive(async () => {
    pageOut = true;
    await new Promise<void>((resolve) => (answer = resolve)); // the joining daemon's answer
  }, { writes: false, held: true });
  await waitFor('the page to be out', () => pageOut);
  let quiesced = false;
  const hold = replicas.hold().then(() => (quiesced = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(quiesced, 'not quiesced while the page is unanswered');
  answer();
  await hold;
  await sending;
  t.ok(quiesced, 'quiesced once it was answered');
  replicas.release();
});

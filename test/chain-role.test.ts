// daemon/chain-role.ts: a daemon's role in a partition's chain, computed once per config; where its batches go
// next; and the transfer page check that the role decides. Pure; plain config data, no servers.
import t from 'tap';
import { roleOf, servesReads, successorFor, takesWrites, transferTarget } from '../daemon/chain-role.js';
import { checkTransferred } from '../daemon/routing.js';
import { dataKey } from '../shared/key-layout.js';
import type { ClusterConfig, PartitionInfo } from '../shared/config.js';

const [A, B, C, D] = ['1001', '1002', '1003', '1004'];

t.test('a chain of three: head, middle, tail; the rest none', async (t) => {
  const p: PartitionInfo = { chain: [A, B, C], since: 3 };
  t.same(roleOf(p, A), { kind: 'head', successor: B });
  t.same(roleOf(p, B), { kind: 'middle', successor: C });
  t.same(roleOf(p, C), { kind: 'tail', joiner: undefined });
  t.same(roleOf(p, D), { kind: 'none' });
  t.same(roleOf(undefined, A), { kind: 'none' }, 'a partition (or space) the config lacks');
  t.same(roleOf({ chain: [], since: 5 }, A), { kind: 'none' }, 'a partition no daemon could take');
});

t.test('a one-member chain is head and tail at once', async (t) => {
  const sole = roleOf({ chain: [A], since: 3 }, A);
  t.same(sole, { kind: 'sole', joiner: undefined });
  t.ok(takesWrites(sole), 'takes writes');
  t.ok(servesReads(sole), 'serves reads');
  t.equal(successorFor(sole, false), null, 'the end of the chain');
  const withJoiner = roleOf({ chain: [A], since: 4, joining: { server: B } }, A);
  t.same(withJoiner, { kind: 'sole', joiner: B });
  t.equal(transferTarget(withJoiner), B, 'it sends the partition to the joining member');
  t.equal(successorFor(withJoiner, false), B, 'and forwards its batches to it');
});

t.test('only the head takes writes, only the tail serves reads', async (t) => {
  const p: PartitionInfo = { chain: [A, B, C], since: 3, joining: { server: D } };
  t.same([A, B, C, D].map((s) => takesWrites(roleOf(p, s))), [true, false, false, false]);
  t.same([A, B, C, D].map((s) => servesReads(roleOf(p, s))), [false, false, true, false], 'not the joining member');
});

t.test('a member leaving (a replaced tail) is a middle until it goes', async (t) => {
  const p: PartitionInfo = { chain: [A, B, C], since: 9, leaving: B };
  t.same(roleOf(p, B), { kind: 'middle', successor: C });
  t.notOk(servesReads(roleOf(p, B)), 'it does not serve reads');
});

t.test('the joining member: after the tail, from which it receives the transfer', async (t) => {
  const p: PartitionInfo = { chain: [A, B], since: 7, joining: { server: C, replaces: A } };
  t.same(roleOf(p, C), { kind: 'joining', tail: B });
  t.same(roleOf(p, B), { kind: 'tail', joiner: C });
  t.equal(transferTarget(roleOf(p, B)), C, 'the tail sends it the partition');
  t.equal(transferTarget(roleOf(p, A)), undefined, 'the head does not');
  t.equal(transferTarget(roleOf(p, C)), undefined, 'nor does the joining member');
  t.equal(successorFor(roleOf(p, B), false), C, 'the tail forwards its batches to it');
  t.same(roleOf({ chain: [], since: 7, joining: { server: C } }, C), { kind: 'joining', tail: undefined }, 'joining a chain with no member');
});

t.test('where a batch goes next, by the role now and the role it was taken in', async (t) => {
  const p: PartitionInfo = { chain: [A, B], since: 7, joining: { server: C } };
  t.equal(successorFor(roleOf(p, A), false), B, 'the head: its successor');
  t.equal(successorFor(roleOf(p, B), false), C, 'the tail: the joining member');
  t.equal(successorFor(roleOf({ chain: [A, B], since: 7 }, B), false), null, 'the tail with nobody joining: the end');
  t.equal(successorFor(roleOf(p, C), true), null, 'the joining member, for a batch it took as such: the end');
  t.equal(successorFor(roleOf(p, C), false), 'left', 'the joining member, for a batch it took in another role: left');
  t.equal(successorFor(roleOf(p, D), false), 'left', 'out of the chain: left');
  t.equal(successorFor(roleOf(p, D), true), 'left');
  t.equal(successorFor(roleOf({ chain: [C, A], since: 8 }, C), true), A, 'a joining member promoted (here to head) still forwards what it took joining');
});

t.test('a transfer page: only to the joining member, from the tail, by a config as new as the joining', async (t) => {
  const config = { version: 12 } as ClusterConfig;
  const p: PartitionInfo = { chain: [B, D], since: 12, joining: { server: A } };
  const page = (v: number, source = D, key = dataKey(1, 0, 'k')) => ({
    t: 'transfer' as const, id: 1, v, spaceId: 1, partition: 0, source, first: true, done: false,
    entries: [[key, Buffer.from([0x80])]] as Array<[Uint8Array, Uint8Array]>,
  });
  t.doesNotThrow(() => checkTransferred(config, roleOf(p, A), p.since, page(12)));
  t.throws(() => checkTransferred(config, roleOf(p, A), p.since, page(11)), { code: 'STALE_CONFIG', version: 12 }, 'a page of an earlier joining');
  t.throws(() => checkTransferred(config, roleOf(p, A), p.since, page(12, B)), { code: 'WRONG_SERVER' }, 'not from the head');
  t.throws(() => checkTransferred(config, roleOf(p, D), p.since, page(12)), { code: 'WRONG_SERVER' }, 'not to the tail');
  t.throws(() => checkTransferred(config, roleOf(p, C), p.since, page(12)), { code: 'WRONG_SERVER' }, 'not to a daemon outside');
  t.throws(() => checkTransferred(config, roleOf(p, A), p.since, page(12, D, dataKey(1, 1, 'k'))), { code: 'BAD_REQUEST' }, 'not a key of another partition');
});

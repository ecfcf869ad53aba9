// The coordinator's etcd client against a real 3-member etcd (Debian's 3.4.23): the txns the replicated
// coordinators build on (campaign, fence, restore into an empty prefix), leases, watches, and what it does when an
// endpoint is black-holed, the leader dies, or the quorum is lost: fail within the deadline, never hang.
import net from 'node:net';
import t from 'tap';
import { EtcdClient, EtcdError, prefixEnd, type Compare } from '../coordinator/etcd-client.js';
import { startEtcd, type EtcdCluster } from './helpers/etcd.js';
import { freePortRange, type TestLike } from './helpers/cluster.js';
import { waitFor } from './helpers/wait-for.js';

const timeoutMs = 2000;
const slackMs = 700; // what a call may take beyond its deadline on a busy 2-core machine

let cluster: EtcdCluster;
let client: EtcdClient;
t.before(async () => {
  cluster = await startEtcd();
  client = new EtcdClient(cluster.endpoints, { requestTimeoutMs: timeoutMs });
});
t.teardown(() => cluster?.close());

const text = (b: Buffer) => b.toString('utf8');
const codeOf = async (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (e instanceof EtcdError ? e.code : `not an EtcdError: ${String(e)}`));

t.test('prefixEnd is the first key after every key with the prefix', async (t) => {
  t.same(prefixEnd('a/'), Buffer.from('a0'));
  t.same(prefixEnd(Buffer.from([1, 0xff, 0xff])), Buffer.from([2]));
  t.same(prefixEnd(Buffer.from([0xff])), Buffer.from([0]), 'all 0xff: to the end of the key space');
  t.same(prefixEnd(''), Buffer.from([0]));
});

t.test('put, range and a prefix range, with string and byte keys', async (t) => {
  const written = await client.put('kv/a', 'one');
  await client.put(Buffer.from('kv/b'), Buffer.from([0, 1, 0xff]));
  await client.put('kv0', 'outside the prefix');
  const one = await client.range('kv/a');
  t.equal(one.count, 1);
  t.equal(text(one.kvs[0]!.value), 'one');
  t.equal(one.kvs[0]!.createRevision, written.revision, 'revisions are numbers');
  t.equal(one.kvs[0]!.lease, '0');
  const all = await client.range('kv/', { prefix: true });
  t.same(all.kvs.map((kv) => text(kv.key)), ['kv/a', 'kv/b']);
  t.same(all.kvs[1]!.value, Buffer.from([0, 1, 0xff]), 'bytes come back as they went');
  t.same((await client.range('kv/', { prefix: true, limit: 1 })).kvs.length, 1);
  t.same((await client.range('kv/nothing')).kvs, [], 'a missing key is no error');
  const old = await client.range('kv/a', { revision: written.revision - 1 });
  t.equal(old.count, 0, 'a range at an older revision sees the past');
  const deleted = await client.deleteRange('kv/', { prefix: true });
  t.equal(deleted.deleted, 2);
  t.equal((await client.range('kv0')).count, 1, 'the prefix delete left the key outside it');
});

t.test('txn: the campaign (create_revision == 0) wins once; the fence (mod_revision) fails after another writer', async (t) => {
  const campaign = (who: string) => client.txn({
    compare: [{ key: 'leader', target: 'CREATE', result: 'EQUAL', createRevision: 0 }],
    success: [{ put: { key: 'leader', value: who } }],
    failure: [{ range: { key: 'leader' } }],
  });
  const first = await campaign('c1');
  t.ok(first.succeeded, 'the first campaign wins');
  const second = await campaign('c2');
  t.notOk(second.succeeded, 'the second one loses');
  t.equal(text(second.responses[0]!.range!.kvs[0]!.value), 'c1', 'and reads who leads');
  const epoch = second.responses[0]!.range!.kvs[0]!.createRevision;
  t.equal(epoch, first.header.revision, "the leader key's create_revision is the epoch");

  const header = await client.put('config', 'v1');
  const fence = (): Compare => ({ key: 'config', target: 'MOD', result: 'EQUAL', modRevision: header.revision });
  const fenced = await client.txn({ compare: [fence()], success: [{ put: { key: 'config', value: 'v2' } }], failure: [] });
  t.ok(fenced.succeeded, 'a write fenced on what it read goes through');
  const stale = await client.txn({ compare: [fence()], success: [{ put: { key: 'config', value: 'v3' } }], failure: [] });
  t.notOk(stale.succeeded, 'after another write the same fence fails');
  t.equal(text((await client.range('config')).kvs[0]!.value), 'v2');
});

t.test('txn: create_revision == 0 over a prefix range holds only while the prefix is empty (restore)', async (t) => {
  const restore = (value: string) => client.txn({
    compare: [{ key: 'restore/', rangeEnd: prefixEnd('restore/'), target: 'CREATE', result: 'EQUAL', createRevision: 0 }],
    success: [{ put: { key: 'restore/a', value } }, { put: { key: 'restore/b', value } }],
    failure: [],
  });
  t.ok((await restore('first')).succeeded, 'into an empty prefix');
  t.notOk((await restore('second')).succeeded, 'not over what is there');
  t.same((await client.range('restore/', { prefix: true })).kvs.map((kv) => text(kv.value)), ['first', 'first']);
});

t.test('leases: grant, keep-alive, expiry deletes its key, keep-alive of an expired lease is LEASE_NOT_FOUND', async (t) => {
  const lease = await client.leaseGrant(2);
  t.match(lease, { id: /^\d+$/, ttl: 2 });
  t.equal((await client.leaseKeepAlive(lease.id)).ttl, 2, 'a keep-alive gives the ttl back');
  await client.put('leased', 'x', { lease: lease.id });
  t.equal((await client.range('leased')).kvs[0]!.lease, lease.id);
  await waitFor('the leased key to go when the lease expires', async () => (await client.range('leased')).count === 0, 10_000);
  await t.rejects(client.leaseKeepAlive(lease.id), { code: 'LEASE_NOT_FOUND', message: `etcd lease ${lease.id} is gone (expired or revoked)` });

  const revoked = await client.leaseGrant(30);
  await client.put('revoked', 'x', { lease: revoked.id });
  await client.leaseRevoke(revoked.id);
  t.equal((await client.range('revoked')).count, 0, 'a revoke deletes at once');
  t.equal(await codeOf(client.leaseRevoke(revoked.id)), 'LEASE_NOT_FOUND');
});

t.test('watch: PUT and DELETE as they happen, and history from an old revision', async (t) => {
  const start = await client.put('w/one', '1');
  const controller = new AbortController();
  const seen: string[] = [];
  const watching = client.watch('w/', { prefix: true, signal: controller.signal }, (events) => {
    for (const e of events) seen.push(`${e.type} ${text(e.kv.key)}${e.prevKv ? ` was ${text(e.prevKv.value)}` : ''}`);
  });
  await client.put('w/two', '2');
  await client.deleteRange('w/two');
  await waitFor(() => `a PUT and a DELETE (seen ${JSON.stringify(seen)})`, () => seen.length >= 2, 5000);
  t.same(seen, ['PUT w/two', 'DELETE w/two was 2']);
  controller.abort();
  await watching;
  t.pass('an aborted watch resolves');

  const history: string[] = [];
  const again = new AbortController();
  const replay = client.watch('w/', { prefix: true, startRevision: start.revision, signal: again.signal }, (events, header) => {
    t.ok(header.revision >= start.revision + 2);
    history.push(...events.map((e) => `${e.type} ${text(e.kv.key)}`));
  });
  await waitFor(() => `the history (seen ${JSON.stringify(history)})`, () => history.length >= 3, 5000);
  t.same(history, ['PUT w/one', 'PUT w/two', 'DELETE w/two']);
  again.abort();
  await replay;
});

t.test('a range or a watch from a compacted revision fails COMPACTED', async (t) => {
  const old = await client.put('compacted', '1');
  const now = await client.put('compacted', '2');
  // The client has no compaction (the coordinator never compacts); ask the gateway directly.
  const response = await fetch(`${cluster.endpoints[0]}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: String(now.revision), physical: true }) });
  t.equal(response.status, 200);
  await t.rejects(client.range('compacted', { revision: old.revision }), { code: 'COMPACTED', message: /answered: etcdserver: mvcc: required revision has been compacted$/ });
  const watching = client.watch('compacted', { startRevision: old.revision, signal: new AbortController().signal }, () => {});
  await t.rejects(watching, { code: 'COMPACTED', message: new RegExp(`compacted up to revision ${now.revision}\\)$`) });
});

/** A TCP server that accepts connections and never answers: a black hole. */
async function blackHole(t: TestLike): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

t.test('a black-holed endpoint fails within the deadline, clearly, and the next call goes to a live one', async (t) => {
  const hole = await blackHole(t);
  const c = new EtcdClient([hole, ...cluster.endpoints], { requestTimeoutMs: timeoutMs });
  const began = performance.now();
  await t.rejects(c.put('hole', 'x'), { code: 'UNCERTAIN', endpoint: hole, message: `etcd ${hole} did not answer within ${timeoutMs} ms` });
  const took = performance.now() - began;
  t.ok(took >= timeoutMs - 50 && took < timeoutMs + slackMs, `a write is not sent elsewhere after a timeout (${Math.round(took)} ms)`);
  t.equal((await client.range('hole')).count, 0, 'nor did it reach etcd some other way');
  await c.put('hole', 'y');
  t.equal(text((await client.range('hole')).kvs[0]!.value), 'y', 'the next call went to a live endpoint');

  const reader = new EtcdClient([hole, ...cluster.endpoints], { requestTimeoutMs: timeoutMs });
  const readBegan = performance.now();
  t.equal((await reader.range('hole')).count, 1, 'a range moves on past the black hole within its deadline');
  t.ok(performance.now() - readBegan < timeoutMs + slackMs);

  const watcher = new EtcdClient([hole], { requestTimeoutMs: timeoutMs });
  const watchBegan = performance.now();
  await t.rejects(watcher.watch('hole', { signal: new AbortController().signal }, () => {}), { code: 'UNCERTAIN', message: `etcd ${hole} did not answer within ${timeoutMs} ms` });
  t.ok(performance.now() - watchBegan < timeoutMs + slackMs, 'a watch that never starts fails within the deadline');
});

t.test('a paused member (SIGSTOP) times out like a black hole, and serves again after SIGCONT', async (t) => {
  const leader = await cluster.leader();
  const follower = cluster.members.find((m) => m !== leader)!;
  const c = new EtcdClient([follower.clientUrl], { requestTimeoutMs: timeoutMs });
  await follower.stop();
  t.ok(follower.running, 'a paused member still runs');
  const began = performance.now();
  await t.rejects(c.put('paused', 'x'), { code: 'UNCERTAIN', message: `etcd ${follower.clientUrl} did not answer within ${timeoutMs} ms` });
  t.ok(performance.now() - began < timeoutMs + slackMs);
  await follower.cont();
  await waitFor('the resumed member to serve', async () => (await codeOf(c.range('paused'))) === 'ok', 10_000);
  t.pass('it serves again');
});

t.test('a refused endpoint is skipped at once, also for writes', async (t) => {
  const port = await freePortRange(2);
  const [one, two] = [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`];
  const refusing = new EtcdClient([one, ...cluster.endpoints], { requestTimeoutMs: timeoutMs });
  await refusing.put('refused', 'x');
  t.equal((await client.range('refused')).count, 1);
  const nobody = new EtcdClient([one, two], { requestTimeoutMs: timeoutMs });
  await t.rejects(nobody.put('refused', 'y'), {
    code: 'UNREACHABLE',
    message: `etcd ${one} is unreachable (ECONNREFUSED); etcd ${two} is unreachable (ECONNREFUSED)`,
  });
});

// The last tests change the cluster: the leader dies, then a second member.
t.test('when the etcd leader dies, calls go on through the other members', async (t) => {
  const leader = await cluster.leader();
  const c = new EtcdClient([leader.clientUrl, ...cluster.endpoints.filter((e) => e !== leader.clientUrl)], { requestTimeoutMs: timeoutMs });
  await c.put('before', 'x');
  await leader.kill();
  const failures: string[] = [];
  await waitFor(() => `a put after the leader died (failures: ${failures.join(', ')})`, async () => {
    const began = performance.now();
    try {
      await c.put('after', 'y');
      return true;
    } catch (error) {
      failures.push(`${(error as EtcdError).code} in ${Math.round(performance.now() - began)} ms`);
      if (performance.now() - began > timeoutMs + slackMs) throw new Error('a call outlived its deadline');
      return false;
    }
  }, 10_000);
  t.comment(`failed on the way: ${failures.join(', ') || 'none'}`);
  t.equal(text((await c.range('after')).kvs[0]!.value), 'y');
  t.not((await cluster.leader()).name, leader.name, 'under a new leader');
});

t.test('with two of three members dead, calls fail fast with NO_LEADER or UNREACHABLE, and work after one is back', async (t) => {
  const dead = cluster.members.find((m) => !m.running)!;
  const second = cluster.members.find((m) => m.running)!;
  const survivor = cluster.members.find((m) => m.running && m !== second)!;
  const watchingSurvivor = new EtcdClient([survivor.clientUrl]).watch('lost', { signal: new AbortController().signal }, () => {});
  await client.put('lost', 'seen by the watch'); // it is under way
  await second.kill();
  const watchBegan = performance.now();
  // etcd cancels a require-leader watch once its member has had no leader for a few election timeouts; 3.4.23's
  // gateway then just ends the stream, without an error line.
  await t.rejects(watchingSurvivor, { code: 'UNREACHABLE', message: `etcd ${survivor.clientUrl} ended the watch stream` },
    'a running watch on a member that lost its quorum fails');
  t.ok(performance.now() - watchBegan < 10_000, `soon (${Math.round(performance.now() - watchBegan)} ms)`);
  await waitFor('the survivor to see it has no leader', async () => (await client.status(survivor.clientUrl)).leader === '0', 10_000);
  for (const call of [() => client.put('lost', 'x'), () => client.range('lost'), () => client.range('lost', { serializable: true }),
    () => client.leaseGrant(5), () => client.watch('lost', { signal: new AbortController().signal }, () => {})]) {
    const began = performance.now();
    const code = await codeOf(call());
    t.ok(code === 'NO_LEADER' || code === 'UNREACHABLE', `fails with ${code}`);
    t.ok(performance.now() - began < timeoutMs + slackMs, `within the deadline (${Math.round(performance.now() - began)} ms)`);
  }
  await t.rejects(new EtcdClient([survivor.clientUrl]).range('lost'), { code: 'NO_LEADER', message: `etcd ${survivor.clientUrl} answered: etcdserver: no leader` });

  await dead.start();
  await waitFor('a put once a second member is back', async () => (await codeOf(client.put('back', 'x'))) === 'ok', 15_000);
  t.equal((await client.range('back')).count, 1);
  t.ok(dead.running);
});

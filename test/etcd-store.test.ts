// The etcd config store against a real 3-member etcd: the campaign, the fence that stops a deposed leader whose
// lease etcd revoked early (the 3.4 bug), the step-down by the leader's own deadline when etcd goes silent, and
// restore only into an empty prefix.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { EtcdStore } from '../coordinator/etcd-store.js';
import { EtcdClient } from '../coordinator/etcd-client.js';
import { newCluster, setValueBytesMax, restoredCluster } from '../coordinator/cluster.js';
import { decodeState } from '../shared/state-file.js';
import { createLogger } from '../shared/log.js';
import { asKvError } from '../shared/errors.js';
import { startEtcd } from './helpers/etcd.js';
import { etcdProxies } from './helpers/black-hole-proxy.js';
import { waitFor } from './helpers/wait-for.js';

const log = createLogger('test', 'silent');
const etcd = await startEtcd();
t.teardown(() => etcd.close());
const raw = new EtcdClient(etcd.endpoints);
const prefixes = () => `/kv/store-${randomBytes(4).toString('hex')}`;
const store = (prefix: string, endpoints = etcd.endpoints) => new EtcdStore({ endpoints, prefix, leaseTtlSeconds: 2, log });

t.test('one leader at a time; a deposed leader whose lease was revoked early is fenced off', async (t) => {
  const prefix = prefixes();
  const a = store(prefix);
  const b = store(prefix);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const first = await a.campaign('a:1', abort.signal);
  t.equal(first.stored, undefined, 'a new prefix holds no config');
  const config = { ...newCluster(), epoch: first.epoch };
  await first.save(config);
  let bWon = false;
  const second = b.campaign('b:1', abort.signal).then((l) => ((bWon = true), l));
  await waitFor('b to see a as the leader', () => b.leader()?.address === 'a:1');
  t.notOk(bWon, 'b does not lead while a does');

  // etcd 3.4.23 can revoke a lease before its TTL: a still believes it leads (its deadline has not passed).
  const ended: string[] = [];
  first.onEnd((why) => ended.push(why));
  const { kvs } = await raw.range(`${prefix}/leader`);
  await raw.leaseRevoke(kvs[0]!.lease);
  const leader = await second;
  t.ok(leader.epoch > first.epoch, `the new leader's epoch ${leader.epoch} is above ${first.epoch}`);
  t.same(leader.stored?.clusterId, config.clusterId, 'it reads the config a saved');
  t.ok(first.leading, 'a still believes it leads (the deadline is its own clock)');
  const refused = await first.save(setValueBytesMax(config, 1234)).then(() => undefined, (e: unknown) => asKvError(e));
  t.equal(refused?.code, 'NOT_LEADER', "a's save is fenced off");
  t.equal(ended.length, 1, 'and its leadership ends');
  t.notOk(first.leading);
  const stored = await raw.range(`${prefix}/config`);
  t.equal(decodeState(stored.kvs[0]!.value, 'etcd').valueBytesMax, undefined, 'nothing of a deposed leader reached etcd');
  await leader.save({ ...setValueBytesMax(config, 4321), epoch: leader.epoch });
  t.equal(decodeState((await raw.range(`${prefix}/config`)).kvs[0]!.value, 'etcd').valueBytesMax, 4321, 'the new leader saves');
});

t.test('a leader whose etcd traffic is black-holed steps down by its own deadline, no error raised', async (t) => {
  const prefix = prefixes();
  const proxies = await etcdProxies(etcd.endpoints);
  t.teardown(() => proxies.close());
  const a = store(prefix, proxies.urls);
  const b = store(prefix);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const first = await a.campaign('a:1', abort.signal);
  const ended: Array<{ why: string; at: number }> = [];
  first.onEnd((why) => ended.push({ why, at: performance.now() }));
  const second = b.campaign('b:1', abort.signal);
  const cutAt = performance.now();
  proxies.blackHole();
  await waitFor('a to step down', () => ended.length === 1, 10_000, 20);
  const steppedDownMs = ended[0]!.at - cutAt;
  t.ok(steppedDownMs <= 2_000, `a stepped down ${Math.round(steppedDownMs)} ms after the cut (TTL 2 s)`);
  t.match(ended[0]!.why, /lease ran out/, 'by its deadline');
  const leader = await second;
  const wonMs = performance.now() - cutAt;
  t.ok(wonMs >= steppedDownMs, `b leads ${Math.round(wonMs)} ms after the cut, after a stepped down`);
  t.ok(leader.epoch > first.epoch);
});

t.test('restore only into an empty prefix', async (t) => {
  const prefix = prefixes();
  const a = store(prefix);
  t.teardown(() => a.close());
  const saved = setValueBytesMax(newCluster(), 777);
  await a.restore(restoredCluster(saved));
  const again = await a.restore(restoredCluster(saved)).then(() => undefined, (e: unknown) => asKvError(e));
  t.equal(again?.code, 'DATA_DIR_INVALID', 'a second restore into the same prefix is refused');
  t.match(again?.message, /not empty/);
  const other = prefixes();
  await raw.put(`${other}/leader`, 'someone');
  const b = store(other);
  t.teardown(() => b.close());
  const refused = await b.restore(restoredCluster(saved)).then(() => undefined, (e: unknown) => asKvError(e));
  t.equal(refused?.code, 'DATA_DIR_INVALID', 'a prefix holding anything is not empty');
  t.equal((await raw.range(`${other}/config`)).kvs.length, 0, 'and nothing was written there');
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const leadership = await a.campaign('a:1', abort.signal);
  t.equal(leadership.stored?.valueBytesMax, 777, 'the leader of the restored prefix loads the restored config');
  t.equal(leadership.stored?.clusterId, saved.clusterId);
  t.equal(leadership.stored?.readOnly, true);
});

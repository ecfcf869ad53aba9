// coordinator/cluster.ts: the coordinator's pure config transitions.
import t from 'tap';
import {
  addSpace,
  newCluster,
  registerServer,
  restoredCluster,
  rmSpace,
  setReadOnly,
  setServerState,
} from '../coordinator/cluster.js';
import { findServer, findSpace, type ClusterConfig } from '../shared/config.js';
import { partitionsMax, spaceNameLengthMax } from '../shared/limits.js';

const join = (config: ClusterConfig, address: string) =>
  registerServer(config, { address, serverId: null, clusterId: null });

/** A cluster of `count` registered, available daemons. */
const withServers = (count: number, clusterId = '77'): ClusterConfig => {
  let config = newCluster(clusterId);
  for (let i = 0; i < count; i++) config = join(config, `127.0.0.1:${3000 + i}`).config;
  return config;
};

t.test('newCluster', async (t) => {
  const config = newCluster('123');
  t.same(config, { clusterId: '123', incarnation: config.incarnation, version: 1, readOnly: false, servers: [], spaces: [], nextSpaceId: 1 });
  const a = newCluster();
  const b = newCluster();
  t.match(a.clusterId, /^\d+$/, 'a generated id is decimal');
  t.not(a.clusterId, b.clusterId, 'generated ids differ');
  t.not(a.incarnation, b.incarnation, 'every cluster has its own incarnation');
  t.equal(a.version, 1);
});

t.test('registerServer', async (t) => {
  const start = newCluster('77');
  const first = join(start, '127.0.0.1:3000');
  t.match(first.serverId, /^\d+$/);
  t.equal(first.config.version, 2, 'version + 1');
  t.same(first.config.servers, [{ id: first.serverId, address: '127.0.0.1:3000', state: 'available' }]);
  t.same(start.servers, [], 'the old config is not mutated');
  t.equal(start.version, 1);

  const second = join(first.config, '127.0.0.1:3001');
  t.not(second.serverId, first.serverId, 'each new daemon gets its own id');
  t.equal(second.config.version, 3);
  t.equal(second.config.servers.length, 2);

  // A known daemon comes back (say after being marked not available) from a new address: same id, new address.
  const down = setServerState(second.config, first.serverId, 'not_available');
  const back = registerServer(down, { address: '10.0.0.9:4000', serverId: first.serverId, clusterId: '77' });
  t.equal(back.serverId, first.serverId, 'keeps its id');
  t.equal(back.config.version, down.version + 1);
  t.equal(back.config.servers.length, 2, 'no new server entry');
  t.same(findServer(back.config, first.serverId), { id: first.serverId, address: '10.0.0.9:4000', state: 'available' });
  t.same(findServer(back.config, second.serverId), findServer(down, second.serverId), 'the other server is untouched');
  t.equal(back.config.clusterId, '77');

  t.throws(() => registerServer(second.config, { address: 'x:1', serverId: null, clusterId: '78' }), {
    code: 'CLUSTER_MISMATCH',
  }, 'a new daemon with data of another cluster');
  t.throws(() => registerServer(second.config, { address: 'x:1', serverId: first.serverId, clusterId: '78' }), {
    code: 'CLUSTER_MISMATCH',
  }, 'a known id under another cluster');
  t.throws(() => registerServer(second.config, { address: 'x:1', serverId: '999', clusterId: '77' }), {
    code: 'UNKNOWN_SERVER',
  });
  t.throws(() => registerServer(second.config, { address: 'x:1', serverId: first.serverId, clusterId: null }), {
    code: 'BAD_REQUEST',
  }, 'a server id without a cluster id');

  const fresh = registerServer(second.config, { address: 'x:1', serverId: null, clusterId: '77' });
  t.equal(fresh.config.servers.length, 3, 'a new daemon may name the right cluster id');
});

t.test('addSpace spreads partitions evenly over available servers only', async (t) => {
  let config = withServers(4);
  const down = config.servers[1]!.id;
  config = setServerState(config, down, 'not_available');
  const available = config.servers.filter((s) => s.state === 'available').map((s) => s.id);
  t.equal(available.length, 3);

  const next = addSpace(config, 'users', 12, 0);
  t.equal(next.version, config.version + 1);
  const space = findSpace(next, 'users')!;
  t.ok(space);
  t.equal(space.partitions.length, 12);
  t.equal(space.tolerate, 0);
  t.equal(space.id, 1);
  t.equal(next.nextSpaceId, 2);
  const perServer = new Map<string, number>();
  for (const p of space.partitions) {
    t.equal(p.chain.length, 1);
    t.equal(p.since, next.version, 'since is the new version');
    perServer.set(p.chain[0]!, (perServer.get(p.chain[0]!) ?? 0) + 1);
  }
  t.same([...perServer.keys()].sort(), [...available].sort(), 'every available server and only those');
  t.same([...perServer.values()], [4, 4, 4], 'evenly');
  t.notOk(perServer.has(down), 'the not_available server gets nothing');
  t.same(config.spaces, [], 'the old config is not mutated');

  // 7 partitions over 3 servers: counts differ by at most one.
  const odd = findSpace(addSpace(config, 'odd', 7, 0), 'odd')!;
  const counts = new Map<string, number>();
  for (const p of odd.partitions) counts.set(p.chain[0]!, (counts.get(p.chain[0]!) ?? 0) + 1);
  t.same([...counts.values()].sort(), [2, 2, 3]);

  // A shut-down server gets nothing either.
  const shut = setServerState(config, available[0]!, 'shutdown');
  const two = findSpace(addSpace(shut, 's', 4, 0), 's')!;
  t.same(new Set(two.partitions.map((p) => p.chain[0])), new Set(available.slice(1)));
});

t.test('addSpace with tolerate builds chains of distinct available servers', async (t) => {
  let config = withServers(4);
  config = setServerState(config, config.servers[0]!.id, 'not_available');
  const space = findSpace(addSpace(config, 'replicated', 9, 2), 'replicated')!;
  t.equal(space.tolerate, 2);
  for (const p of space.partitions) {
    t.equal(p.chain.length, 3);
    t.equal(new Set(p.chain).size, 3, 'distinct servers in a chain');
    t.notOk(p.chain.includes(config.servers[0]!.id));
  }
  const headCounts = new Map<string, number>();
  for (const p of space.partitions) headCounts.set(p.chain[0]!, (headCounts.get(p.chain[0]!) ?? 0) + 1);
  t.same([...headCounts.values()], [3, 3, 3], 'heads spread evenly');

  t.throws(() => addSpace(config, 'too-safe', 4, 3), { code: 'UNAVAILABLE' }, 'needs 4, has 3 available');
  t.throws(() => addSpace(newCluster('1'), 'empty', 4, 0), { code: 'UNAVAILABLE' }, 'no daemons at all');
  t.doesNotThrow(() => addSpace(config, 'just-enough', 4, 2));
});

t.test('addSpace refusals', async (t) => {
  const config = addSpace(withServers(2), 'users', 4, 0);
  t.throws(() => addSpace(config, 'users', 4, 0), { code: 'SPACE_EXISTS' });
  for (const name of ['', 'has space', 'slash/name', 'ü', 'a:b', 'x'.repeat(spaceNameLengthMax + 1)]) {
    t.throws(() => addSpace(config, name, 4, 0), { code: 'BAD_REQUEST' }, `name ${JSON.stringify(name.slice(0, 20))}`);
  }
  t.doesNotThrow(() => addSpace(config, 'x'.repeat(spaceNameLengthMax), 4, 0), 'a name at the limit');
  t.doesNotThrow(() => addSpace(config, 'Az09_.-', 4, 0), 'every allowed character class');
  for (const partitions of [0, -1, partitionsMax + 1]) {
    t.throws(() => addSpace(config, 'ok', partitions, 0), { code: 'BAD_REQUEST' }, `${partitions} partitions`);
  }
  t.equal(findSpace(addSpace(config, 'one', 1, 0), 'one')!.partitions.length, 1);
  t.equal(findSpace(addSpace(config, 'max', partitionsMax, 0), 'max')!.partitions.length, partitionsMax);
  // Validation comes before the existence and availability checks.
  t.throws(() => addSpace(newCluster('1'), 'bad name', 4, 0), { code: 'BAD_REQUEST' });
});

t.test('space ids are never reused after rmSpace', async (t) => {
  let config = withServers(1);
  config = addSpace(config, 'a', 2, 0);
  config = addSpace(config, 'b', 2, 0);
  t.same(config.spaces.map((s) => s.id), [1, 2]);
  const before = config.version;
  config = rmSpace(config, 'b');
  t.equal(config.version, before + 1, 'rmSpace bumps the version');
  t.same(config.spaces.map((s) => s.name), ['a']);
  t.equal(config.nextSpaceId, 3);
  config = addSpace(config, 'b', 2, 0);
  t.equal(findSpace(config, 'b')!.id, 3, 'the re-created space gets a new id');
  config = rmSpace(rmSpace(config, 'a'), 'b');
  t.same(config.spaces, []);
  t.equal(findSpace(addSpace(config, 'a', 1, 0), 'a')!.id, 4);

  t.throws(() => rmSpace(config, 'a'), { code: 'NO_SUCH_SPACE' });
  t.throws(() => rmSpace(withServers(0), 'never'), { code: 'NO_SUCH_SPACE' });
});

t.test('setReadOnly', async (t) => {
  const config = withServers(1);
  t.equal(setReadOnly(config, false), config, 'a no-op returns the same object (no version bump)');
  const ro = setReadOnly(config, true);
  t.equal(ro.readOnly, true);
  t.equal(ro.version, config.version + 1);
  t.equal(config.readOnly, false, 'not mutated');
  t.equal(setReadOnly(ro, true), ro, 'already read-only: the same object');
  const rw = setReadOnly(ro, false);
  t.equal(rw.readOnly, false);
  t.equal(rw.version, ro.version + 1);
});

t.test('setServerState', async (t) => {
  const config = withServers(2);
  const [a, b] = config.servers.map((s) => s.id) as [string, string];
  t.equal(setServerState(config, a, 'available'), config, 'same state: same object');
  t.equal(setServerState(config, 'nobody', 'shutdown'), config, 'unknown server: same object');
  const next = setServerState(config, a, 'shutdown');
  t.equal(next.version, config.version + 1);
  t.equal(findServer(next, a)!.state, 'shutdown');
  t.equal(findServer(next, b)!.state, 'available', 'the other server is untouched');
  t.equal(findServer(config, a)!.state, 'available', 'not mutated');
  t.equal(findServer(setServerState(next, a, 'not_available'), a)!.state, 'not_available');
});

t.test('restoredCluster', async (t) => {
  let saved = withServers(3, '555');
  saved = addSpace(saved, 'users', 6, 1);
  saved = setServerState(saved, saved.servers[2]!.id, 'shutdown');
  const restored = restoredCluster(saved);
  t.equal(restored.readOnly, true);
  t.equal(restored.version, saved.version + 1);
  t.equal(restored.clusterId, '555');
  t.not(restored.incarnation, saved.incarnation, 'a restore is a new incarnation of the same cluster');
  t.same(restored.servers.map((s) => s.state), ['available', 'available', 'shutdown'], 'states as at the cut: the leader loading it waits for those serving then');
  t.equal(restoredCluster({ ...saved, epoch: 7 }).epoch, undefined, "the new store counts its own epochs");
  t.same(restored.servers.map((s) => [s.id, s.address]), saved.servers.map((s) => [s.id, s.address]), 'same ids and addresses');
  t.same(restored.spaces, saved.spaces, 'spaces are kept');
  t.equal(restored.nextSpaceId, saved.nextSpaceId);
  t.equal(saved.readOnly, false, 'the saved config is not mutated');
  t.equal(saved.servers[0]!.state, 'available');
  t.equal(restoredCluster(setReadOnly(saved, true)).readOnly, true, 'already read-only stays read-only');
});

t.test('a daemon process that starts anew leaves the chains it kept its place in, unless it is their only live member', async (t) => {
  let config = addSpace(withServers(3), 's', 6, 1);
  const [a, b, c] = config.servers.map((s) => s.id) as [string, string, string];
  config = setServerState(config, c, 'not_available');
  const again = registerServer(config, { address: 'h:0b', serverId: a, clusterId: '77', fresh: true }).config;
  for (const [i, p] of again.spaces[0]!.partitions.entries()) {
    const before = config.spaces[0]!.partitions[i]!;
    if (!before.chain.includes(a)) t.same(p, before, `partition ${i}: not a member, unchanged`);
    else if (before.chain.includes(b)) t.same(p, { chain: before.chain.filter((id) => id !== a), since: again.version }, `partition ${i}: it leaves, b carries on`);
    else t.same(p, before, `partition ${i}: its only other member is down, so it stays`);
  }
  t.same(registerServer(config, { address: 'h:0b', serverId: a, clusterId: '77' }).config.spaces, config.spaces, 'a reconnecting process keeps its place');
});

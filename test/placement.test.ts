// Placement, derived from the config after every change (coordinator/placement.ts).
import t from 'tap';
import { addSpace, newCluster, promote, registerServer, setServerState } from '../coordinator/cluster.js';
import { place } from '../coordinator/placement.js';
import type { ClusterConfig } from '../shared/config.js';

function cluster(servers: number): ClusterConfig {
  let config = newCluster('1');
  for (let i = 0; i < servers; i++) config = registerServer(config, { address: `h:${i}`, serverId: null, clusterId: null }).config;
  return config;
}
const settled = (c: ClusterConfig) => place(c, { settled: true, version: c.version + 1 });

t.test('a down daemon leaves chains that have another live member, once settled', async (t) => {
  let config = addSpace(cluster(3), 's', 6, 1);
  const victim = config.servers[0]!.id;
  config = setServerState(config, victim, 'not_available');
  t.equal(place(config, { settled: false, version: config.version + 1 }), config, 'not before settling: nothing moves');
  const placed = settled(config);
  const parts = placed.spaces[0]!.partitions;
  t.ok(parts.every((p) => !p.chain.includes(victim)), 'the down daemon is in no chain');
  t.ok(parts.filter((p, i) => config.spaces[0]!.partitions[i]!.chain.includes(victim)).every((p) => p.since === config.version + 1), 'changed chains get the new since');
  t.ok(parts.every((p) => p.chain.length === 2 || p.joining), 'partitions short of a replica get a joining daemon');
  t.ok(parts.every((p) => !p.joining || p.joining.server !== victim), 'never the down one');
  const joiner = parts.find((p) => p.joining)!.joining!.server;
  const joinerDown = setServerState(placed, joiner, 'not_available');
  const cancelled = settled(joinerDown).spaces[0]!.partitions.filter((_, i) => parts[i]!.joining?.server === joiner);
  t.ok(cancelled.length > 0 && cancelled.every((p) => p.joining?.server !== joiner && p.since === joinerDown.version + 1), 'a cancelled joining changes since too');
});

t.test('a partition whose members are all down keeps them', async (t) => {
  let config = addSpace(cluster(2), 's', 4, 0);
  for (const s of config.servers) config = setServerState(config, s.id, 'not_available');
  const placed = settled(config);
  t.same(placed.spaces[0]!.partitions.map((p) => p.chain), config.spaces[0]!.partitions.map((p) => p.chain));
});

t.test('a new daemon takes partitions over by moves, and promotion completes them', async (t) => {
  let config = addSpace(cluster(2), 's', 8, 0);
  config = registerServer(config, { address: 'h:9', serverId: null, clusterId: null }).config;
  const newcomer = config.servers[2]!.id;
  const placed = settled(config);
  const moves = placed.spaces[0]!.partitions.map((p, i) => ({ p, i })).filter(({ p }) => p.joining?.server === newcomer);
  t.ok(moves.length > 0 && moves.length <= 4, `some partitions move to the newcomer, a bounded number at once (${moves.length})`);
  t.ok(moves.every(({ p }) => p.joining!.replaces && p.chain.includes(p.joining!.replaces)), 'each move replaces a current member');
  t.ok(moves.every(({ p }) => p.since === config.version + 1), 'a partition that starts a move gets the new since (its replica set changed)');
  const { p, i } = moves[0]!;
  const replaced = p.chain.at(-1)!;
  const promoted = promote(placed, placed.spaces[0]!.id, i, newcomer, replaced);
  t.same(promoted.spaces[0]!.partitions[i]!.chain, [replaced, newcomer], 'promotion makes the newcomer the tail; the replaced tail stays before it');
  const acked = new Map([[replaced, promoted.version]]);
  const left = place(promoted, { settled: true, version: promoted.version + 1, acked });
  t.same(left.spaces[0]!.partitions[i]!.chain, [newcomer], 'and leaves once it acknowledged the promotion: the newcomer is the chain');
  t.throws(() => promote(placed, placed.spaces[0]!.id, i, newcomer, 'someone-else'), { code: 'STALE_CONFIG' }, 'only a transfer from the tail counts');
});

t.test('a balanced cluster is left alone', async (t) => {
  const config = addSpace(cluster(3), 's', 9, 1);
  t.equal(settled(config), config);
});

/** Three daemons, one partition on [A, B] and C joining to replace the tail B, transferred and promoted. */
function promotedMove() {
  let config = addSpace(cluster(3), 's', 1, 1);
  const [A, B] = config.spaces[0]!.partitions[0]!.chain as [string, string];
  const C = config.servers.map((s) => s.id).find((id) => id !== A && id !== B)!;
  const space = config.spaces[0]!;
  config = { ...config, version: config.version + 1, spaces: [{ ...space, partitions: [{ chain: [A, B], since: config.version + 1, joining: { server: C, replaces: B } }] }] };
  return { config: promote(config, space.id, 0, C, B), A, B, C };
}

t.test('a move that replaces the tail keeps it in the chain, before the new tail, until it acknowledged', async (t) => {
  const { config, A, B, C } = promotedMove();
  const p = config.spaces[0]!.partitions[0]!;
  t.same(p.chain, [A, B, C], 'writes still pass the replaced tail');
  t.equal(p.leaving, B, 'which is leaving');
  t.equal(p.since, config.version, 'the replica set changed');
  const at = (acked: Map<string, number>, settled = true) => place(config, { settled, version: config.version + 1, acked });
  t.equal(at(new Map()), config, 'nothing acknowledged: it stays');
  t.equal(at(new Map([[B, config.version - 1]])), config, 'an older config acknowledged (it may still think it is the tail): it stays');
  t.equal(at(new Map([[A, config.version], [C, config.version]])), config, 'the others acknowledging does not count');
  const left = at(new Map([[B, config.version]])).spaces[0]!.partitions[0]!;
  t.same(left, { chain: [A, C], since: config.version + 1 }, 'acknowledged: it leaves, and the chain changes its since');
  t.same(at(new Map([[B, config.version]]), false).spaces[0]!.partitions[0]!.chain, [A, C], 'also before settling: its acknowledgement is this session\'s');
});

t.test('a leaving tail that is down leaves at once (its lease has run out), once settled', async (t) => {
  const { config, A, B, C } = promotedMove();
  const down = setServerState(config, B, 'not_available');
  t.equal(place(down, { settled: false, version: down.version + 1 }), down, 'not before settling: it may hold a lease of the previous coordinator');
  const p = settled(down).spaces[0]!.partitions[0]!;
  t.same(p.chain, [A, C]);
  t.notOk('leaving' in p, 'no longer leaving');
});

t.test('a leaving member that becomes the tail again (the new tail went) stays as a member', async (t) => {
  const { config, A, B, C } = promotedMove();
  const placed = settled(setServerState(config, C, 'not_available'));
  const p = placed.spaces[0]!.partitions[0]!;
  t.same(p.chain, [A, B]);
  t.notOk('leaving' in p, 'it is an ordinary member again');
});

t.test('a partition with a leaving member starts no other move until it has left', async (t) => {
  let { config } = promotedMove();
  config = registerServer(config, { address: 'h:9', serverId: null, clusterId: null }).config;
  const p = settled(config).spaces[0]!.partitions[0]!;
  t.notOk(p.joining, 'no move while one is still leaving');
});

t.test('a move that replaces the head (not the tail) drops it at once: writes enter at the old tail anyway', async (t) => {
  let config = addSpace(cluster(3), 's', 1, 1);
  const [A, B] = config.spaces[0]!.partitions[0]!.chain as [string, string];
  const C = config.servers.map((s) => s.id).find((id) => id !== A && id !== B)!;
  const space = config.spaces[0]!;
  config = { ...config, spaces: [{ ...space, partitions: [{ chain: [A, B], since: config.version, joining: { server: C, replaces: A } }] }] };
  const p = promote(config, space.id, 0, C, B).spaces[0]!.partitions[0]!;
  t.same(p.chain, [B, C]);
  t.notOk('leaving' in p);
});

t.test('before settling, placement starts no transfer (a restart changes no chain)', async (t) => {
  let config = addSpace(cluster(2), 's', 8, 0);
  config = registerServer(config, { address: 'h:9', serverId: null, clusterId: null }).config;
  t.equal(place(config, { settled: false, version: config.version + 1 }), config);
});

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
  const promoted = promote(placed, placed.spaces[0]!.id, i, newcomer, p.chain.at(-1)!);
  t.same(promoted.spaces[0]!.partitions[i]!.chain, [newcomer], 'promotion makes the newcomer the chain, the replaced member gone');
  t.throws(() => promote(placed, placed.spaces[0]!.id, i, newcomer, 'someone-else'), { code: 'STALE_CONFIG' }, 'only a transfer from the tail counts');
});

t.test('a balanced cluster is left alone', async (t) => {
  const config = addSpace(cluster(3), 's', 9, 1);
  t.equal(settled(config), config);
});

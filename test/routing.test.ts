// daemon/routing.ts: whether a daemon may serve a request under its current config. Pure; no servers. The daemon's
// replicas compose these checks with the role each computed for the config; `route` and `routeReplica` below
// compose them the same way, computing the role from plain config data.
import t from 'tap';
import { checkForwarded, checkReplicated, checkServes, locate, type Addressed, type Routed } from '../daemon/routing.js';
import { roleOf } from '../daemon/chain-role.js';
import { dataKey } from '../shared/key-layout.js';
import { findSpace, type ClusterConfig } from '../shared/config.js';
import { keyBytesMax } from '../shared/limits.js';
import { partitionOf } from '../shared/partition.js';

/** The judgement of the replicas' `route`: the partition addressed, then whether this daemon's role serves it. */
function route(config: ClusterConfig | undefined, me: string | undefined, request: Addressed, write: boolean): Routed {
  const routed = locate(config, me, request, (name) => findSpace(config!, name));
  checkServes(config!, roleOf(routed.space.partitions[routed.partition], me!), routed, write);
  return routed;
}

/** The judgement of the replicas' `replicate`. */
function routeReplica(
  config: ClusterConfig | undefined,
  me: string | undefined,
  request: { v: number; spaceId: number; partition: number; changes: Array<[Uint8Array, unknown]> },
) {
  checkForwarded(config, me, request.v);
  const info = config.spaces.find((s) => s.id === request.spaceId)?.partitions[request.partition];
  return checkReplicated(config, roleOf(info, me!), info?.since ?? 0, request);
}

const A = '1001';
const B = '1002';
const C = '1003';

/**
 * Config version 7. Space "users" has 4 partitions with chains of two (head first): writes go to the head,
 * reads to the tail. Partition 2 moved at version 6, the others at version 3.
 */
const config = (changes: Partial<ClusterConfig> = {}): ClusterConfig => ({
  clusterId: '42',
  incarnation: '7',
  version: 7,
  readOnly: false,
  servers: [
    { id: A, address: '127.0.0.1:2001', state: 'available' },
    { id: B, address: '127.0.0.1:2002', state: 'available' },
    { id: C, address: '127.0.0.1:2003', state: 'available' },
  ],
  spaces: [
    {
      id: 1,
      name: 'users',
      tolerate: 1,
      partitions: [
        { chain: [A, B], since: 3 },
        { chain: [B, C], since: 3 },
        { chain: [C, A], since: 6 },
        { chain: [A, C], since: 3 },
      ],
    },
    { id: 2, name: 'other', tolerate: 0, partitions: [{ chain: [B], since: 5 }] },
  ],
  nextSpaceId: 3,
  ...changes,
});

const partitionCount = 4;
const heads = [A, B, C, A];
const tails = [B, C, A, C];

/** A key of "users" that lands in the given partition. */
const keyIn = (partition: number): string => {
  for (let i = 0; ; i++) {
    const key = `key-${i}`;
    if (partitionOf(key, partitionCount) === partition) return key;
  }
};

const keyed = (key: string, v = 7, space = 'users'): Addressed => ({ v, space, key });

t.test('no config yet: STALE_CONFIG with version 0', async (t) => {
  t.throws(() => route(undefined, A, keyed('k'), false), { code: 'STALE_CONFIG', version: 0 });
  t.throws(() => route(config(), undefined, keyed('k'), false), { code: 'STALE_CONFIG', version: 0 },
    'a config but no server id yet is the same case');
  t.throws(() => route(undefined, undefined, { v: 0, space: 'users', partition: 0 }, true), {
    code: 'STALE_CONFIG',
    version: 0,
  });
});

t.test('client ahead of the daemon: STALE_CONFIG carrying the daemon version', async (t) => {
  const key = keyIn(0);
  t.throws(() => route(config(), B, keyed(key, 8), false), { code: 'STALE_CONFIG', version: 7 });
  t.throws(() => route(config(), A, keyed(key, 100), true), { code: 'STALE_CONFIG', version: 7 });
  // The same request at the daemon's own version passes.
  t.same(route(config(), B, keyed(key, 7), false).partition, 0);
});

t.test('unknown space: NO_SUCH_SPACE', async (t) => {
  t.throws(() => route(config(), A, keyed('k', 7, 'nope'), false), { code: 'NO_SUCH_SPACE', version: 7 });
  t.throws(() => route(config(), A, { v: 7, space: 'nope', partition: 0 }, false), { code: 'NO_SUCH_SPACE' });
  t.throws(() => route(config({ spaces: [] }), A, keyed('k', 7, 'users'), true), { code: 'NO_SUCH_SPACE' });
});

t.test('keys over 64 KiB: BAD_REQUEST; exactly 64 KiB is fine', async (t) => {
  const tooLong = 'x'.repeat(keyBytesMax + 1);
  t.throws(() => route(config(), A, keyed(tooLong), true), { code: 'BAD_REQUEST' });
  // The limit is in UTF-8 bytes, not characters: 'é' is 2 bytes.
  const wide = 'é'.repeat(keyBytesMax / 2 + 1);
  t.ok(wide.length < keyBytesMax, 'fewer characters than the limit');
  t.throws(() => route(config(), A, keyed(wide), true), { code: 'BAD_REQUEST' }, 'but more bytes');

  const atLimit = 'y'.repeat(keyBytesMax);
  const p = partitionOf(atLimit, partitionCount);
  t.same(route(config(), heads[p], keyed(atLimit), true), { space: config().spaces[0], partition: p });
});

t.test('partition out of range on count/scan requests: BAD_REQUEST', async (t) => {
  for (const partition of [4, 5, -1, 1000]) {
    t.throws(() => route(config(), A, { v: 7, space: 'users', partition }, false), { code: 'BAD_REQUEST' },
      `partition ${partition}`);
  }
  t.throws(() => route(config(), A, { v: 7, space: 'users' }, false), { code: 'BAD_REQUEST' },
    'neither key nor partition');
  t.throws(() => route(config(), B, { v: 7, space: 'other', partition: 1 }, false), { code: 'BAD_REQUEST' },
    'a one-partition space has only partition 0');
  t.same(route(config(), B, { v: 7, space: 'other', partition: 0 }, false).partition, 0);
  t.same(route(config(), C, { v: 7, space: 'users', partition: 3 }, false).partition, 3, 'the last one is in range');
});

t.test('routed by a config older than the partition moved: STALE_CONFIG with the daemon version', async (t) => {
  // Partition 2 moved at version 6; its tail is A.
  t.throws(() => route(config(), A, { v: 5, space: 'users', partition: 2 }, false), {
    code: 'STALE_CONFIG',
    version: 7,
  });
  t.throws(() => route(config(), C, keyed(keyIn(2), 5), true), { code: 'STALE_CONFIG', version: 7 });
  t.same(route(config(), A, { v: 6, space: 'users', partition: 2 }, false).partition, 2, 'v === since passes');
  // Partition 0 moved at version 3, so a client at version 5 may still use it.
  t.same(route(config(), B, { v: 5, space: 'users', partition: 0 }, false).partition, 0);
  // The staleness check comes before the ownership check: a stale request to the wrong server is STALE_CONFIG.
  t.throws(() => route(config(), B, { v: 5, space: 'users', partition: 2 }, false), { code: 'STALE_CONFIG' });
});

t.test('partition served by another server: WRONG_SERVER carrying the daemon version', async (t) => {
  for (let p = 0; p < partitionCount; p++) {
    const key = keyIn(p);
    const others = [A, B, C].filter((s) => s !== tails[p]);
    for (const other of others) {
      t.throws(() => route(config(), other, keyed(key), false), { code: 'WRONG_SERVER', version: 7 },
        `read of partition ${p} at ${other}`);
    }
    const notHead = [A, B, C].filter((s) => s !== heads[p]);
    for (const other of notHead) {
      t.throws(() => route(config(), other, keyed(key), true), { code: 'WRONG_SERVER', version: 7 },
        `write of partition ${p} at ${other}`);
    }
  }
  // A read-only cluster still answers WRONG_SERVER to a write sent to the wrong daemon.
  t.throws(() => route(config({ readOnly: true }), B, keyed(keyIn(0)), true), { code: 'WRONG_SERVER' });
  // A partition with no chain is served by nobody.
  const orphaned = config({ spaces: [{ id: 2, name: 'other', tolerate: 0, partitions: [{ chain: [], since: 5 }] }] });
  t.throws(() => route(orphaned, B, { v: 7, space: 'other', partition: 0 }, false), { code: 'WRONG_SERVER' });
});

t.test('read-only cluster: writes are READ_ONLY, reads still pass', async (t) => {
  const ro = config({ readOnly: true });
  for (let p = 0; p < partitionCount; p++) {
    const key = keyIn(p);
    t.throws(() => route(ro, heads[p], keyed(key), true), { code: 'READ_ONLY', version: 7 }, `write to partition ${p}`);
    t.same(route(ro, tails[p], keyed(key), false), { space: ro.spaces[0], partition: p }, `read of partition ${p}`);
  }
  t.same(route(ro, B, { v: 7, space: 'users', partition: 0 }, false).partition, 0, 'count/scan still pass');
});

t.test('happy path: the right partition, head for writes, tail for reads', async (t) => {
  const cfg = config();
  const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`);
  const seen = new Set<number>();
  for (const key of keys) {
    const p = partitionOf(key, partitionCount);
    seen.add(p);
    const write = route(cfg, heads[p], keyed(key), true);
    t.equal(write.partition, p);
    t.equal(write.space, cfg.spaces[0]);
    const read = route(cfg, tails[p], keyed(key), false);
    t.equal(read.partition, p);
    t.equal(read.space.name, 'users');
  }
  t.equal(seen.size, partitionCount, 'the keys cover every partition');

  // The other space routes by its own partition count (1).
  const other = route(cfg, B, keyed('anything', 7, 'other'), true);
  t.equal(other.partition, 0);
  t.equal(other.space.id, 2);

  // With a single-daemon chain, head and tail are the same daemon.
  t.same(route(cfg, B, keyed('anything', 5, 'other'), false), { space: cfg.spaces[1], partition: 0 });

  // Empty keys are keys like any other.
  t.equal(route(cfg, tails[partitionOf('', partitionCount)], keyed(''), false).partition, partitionOf('', partitionCount));
});

t.test('replicated batches: only the members after the head, only by a config as new as the chain, only keys of the partition', async (t) => {
  const cfg = config();
  const batch = (partition: number, v: number, key = dataKey(1, partition, 'k')) => ({ v, spaceId: 1, partition, changes: [[key, null]] as Array<[Uint8Array, unknown]> });
  t.doesNotThrow(() => routeReplica(cfg, B, batch(0, 7)), 'the tail takes a batch forwarded by config 7');
  t.doesNotThrow(() => routeReplica(cfg, B, batch(0, 3)), 'or by the config the chain was set up in');
  t.throws(() => routeReplica(cfg, A, batch(0, 7)), { code: 'WRONG_SERVER' }, 'not the head: clients write there');
  t.throws(() => routeReplica(cfg, C, batch(0, 7)), { code: 'WRONG_SERVER' }, 'not a daemon outside the chain');
  t.throws(() => routeReplica(cfg, B, batch(0, 8)), { code: 'STALE_CONFIG', version: 7 }, 'not by a config this daemon has not seen');
  // Partition 2's chain changed at version 6: a batch its former predecessor forwarded by version 5 may hold
  // values older than ones the new head has sent since; it must not land after them.
  t.throws(() => routeReplica(cfg, A, batch(2, 5)), { code: 'STALE_CONFIG', version: 7 }, 'not by a config older than the chain');
  t.doesNotThrow(() => routeReplica(cfg, A, batch(2, 6)));
  t.throws(() => routeReplica(cfg, B, batch(0, 7, dataKey(1, 1, 'k'))), { code: 'BAD_REQUEST' }, 'not a key of another partition');
  // A joining daemon is the member after the tail: it takes batches too, by a config at least as new as its joining.
  const joining = config({ spaces: [{ id: 1, name: 'users', tolerate: 1, partitions: [{ chain: [A, B], since: 7, joining: { server: C } }] }] });
  t.doesNotThrow(() => routeReplica(joining, C, batch(0, 7)));
  t.throws(() => routeReplica(joining, C, batch(0, 6)), { code: 'STALE_CONFIG' }, 'not one forwarded before it started joining');
});

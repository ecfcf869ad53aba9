// Where partitions should live, derived from the config after every change:
//  0. a tail replaced by a move (`leaving`) leaves once it has acknowledged a config in which it is not the tail:
//     from then on it refuses reads, so writes may bypass it;
//  1. a daemon that is not available leaves every chain that still has an available member, so the others carry
//     on without it (a partition whose members are all down keeps them, and answers UNAVAILABLE until one
//     returns, rather than lose what only they hold). Not available means its read lease has run out. Only once
//     the coordinator has settled: right after a restart or restore every daemon looks down until it registers
//     again, and none should lose its place (nor may it: it may hold a lease the previous process granted);
//  2. each partition gets back to tolerate+1 replicas by adding an available daemon as its joining member
//     (state transfer from the tail);
//  3. load is spread by moving partitions from the busiest daemon to the idlest (join, then the busy one leaves).
// Steps 2 and 3 also wait until settled, so a restart in which every daemon comes back changes no chain.
// One transfer per partition at a time, and a bounded number of moves, so rebalancing never swamps the cluster.
import type { ClusterConfig, PartitionInfo } from '../shared/config.js';
import { withoutServer } from './cluster.js';

/** Moves (transfers that replace a member) in flight at once across the cluster. */
const movesMax = 4;

function loads(config: ClusterConfig, available: string[]): Map<string, number> {
  const load = new Map(available.map((id) => [id, 0]));
  for (const space of config.spaces) {
    for (const p of space.partitions) {
      for (const id of p.joining ? [...p.chain, p.joining.server] : p.chain) {
        if (load.has(id) && id !== p.leaving) load.set(id, load.get(id)! + 1);
      }
    }
  }
  return load;
}

export interface PlaceOptions {
  /** Whether down daemons may be dropped from chains yet (see 1. above). */
  settled: boolean;
  /** The version the placed config will have: the `since` of chains that change. */
  version: number;
  /** The config version each daemon has acknowledged on its current session (none: not acknowledged any). */
  acked?: ReadonlyMap<string, number>;
}

/** Whether a leaving member has acknowledged a config in which it is not the tail (its chain is the current one). */
const hasLeft = (p: PartitionInfo, acked: ReadonlyMap<string, number>): boolean =>
  p.leaving !== undefined && (acked.get(p.leaving) ?? 0) >= p.since;

/** Whether `serverId` acknowledging `version` lets some leaving member go: then placement should run again. */
export function unblocksLeaving(config: ClusterConfig, serverId: string, version: number): boolean {
  const acked = new Map([[serverId, version]]);
  return config.spaces.some((space) => space.partitions.some((p) => p.leaving === serverId && hasLeft(p, acked)));
}

/** Drops the leaving members that have acknowledged a config in which they are no longer the tail. */
function dropLeft(config: ClusterConfig, acked: ReadonlyMap<string, number>, version: number): ClusterConfig {
  let changed = false;
  const spaces = config.spaces.map((space) => ({
    ...space,
    partitions: space.partitions.map((p) => {
      if (!hasLeft(p, acked)) return p;
      changed = true;
      return withoutServer(p, p.leaving!, version);
    }),
  }));
  return changed ? { ...config, spaces } : config;
}

/** Drops down daemons from chains that have an available member. */
function dropDown(config: ClusterConfig, isAvailable: Set<string>, version: number): ClusterConfig {
  let changed = false;
  const spaces = config.spaces.map((space) => ({
    ...space,
    partitions: space.partitions.map((p) => {
      if (!p.chain.some((id) => isAvailable.has(id))) return p;
      let next = p;
      for (const id of [...p.chain, ...(p.joining ? [p.joining.server] : [])]) {
        if (!isAvailable.has(id)) next = withoutServer(next, id, version);
      }
      if (next !== p) changed = true;
      return next;
    }),
  }));
  return changed ? { ...config, spaces } : config;
}

/** The config with down daemons out of chains and the transfers it needs started; the same object when nothing changes. */
export function place(input: ClusterConfig, options: PlaceOptions): ClusterConfig {
  const available = input.servers.filter((s) => s.state === 'available').map((s) => s.id).sort();
  const isAvailable = new Set(available);
  const left = dropLeft(input, options.acked ?? new Map(), options.version);
  if (!options.settled) return left;
  const config = dropDown(left, isAvailable, options.version);
  if (available.length === 0) return config;
  const load = loads(config, available);
  const byLoad = (candidates: string[]) =>
    [...candidates].sort((a, b) => load.get(a)! - load.get(b)! || (a < b ? -1 : 1));
  let changed = false;
  let moves = config.spaces.flatMap((s) => s.partitions).filter((p) => p.joining?.replaces || p.leaving).length;

  const spaces = config.spaces.map((space) => {
    const partitions = space.partitions.map((p): PartitionInfo => {
      if (p.joining || p.leaving || !p.chain.some((id) => isAvailable.has(id))) return p;
      const outside = available.filter((id) => !p.chain.includes(id));
      if (outside.length === 0) return p;
      const [idlest] = byLoad(outside);
      // Missing replicas first.
      if (p.chain.length < space.tolerate + 1) {
        load.set(idlest!, load.get(idlest!)! + 1);
        changed = true;
        return { ...p, joining: { server: idlest! }, since: options.version };
      }
      // Then balance: move from the busiest member of this chain if that evens things out by at least one.
      const busiest = byLoad(p.chain.filter((id) => isAvailable.has(id))).at(-1)!;
      if (moves < movesMax && load.get(busiest)! - load.get(idlest!)! >= 2) {
        moves++;
        load.set(idlest!, load.get(idlest!)! + 1);
        load.set(busiest, load.get(busiest)! - 1);
        changed = true;
        return { ...p, joining: { server: idlest!, replaces: busiest }, since: options.version };
      }
      return p;
    });
    return { ...space, partitions };
  });
  return changed ? { ...config, spaces } : config;
}

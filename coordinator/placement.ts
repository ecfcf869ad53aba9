// Where partitions should live, derived from the config after every change: each partition gets back to
// tolerate+1 replicas by adding an available daemon as its joining member (state transfer from the tail), and
// load is spread by moving partitions from the busiest daemon to the idlest (join, then the busy one leaves).
// One transfer per partition at a time, and a bounded number of moves, so rebalancing never swamps the cluster.
import type { ClusterConfig, PartitionInfo } from '../shared/config.js';

/** Moves (transfers that replace a member) in flight at once across the cluster. */
const movesMax = 4;

function loads(config: ClusterConfig, available: string[]): Map<string, number> {
  const load = new Map(available.map((id) => [id, 0]));
  for (const space of config.spaces) {
    for (const p of space.partitions) {
      for (const id of p.joining ? [...p.chain, p.joining.server] : p.chain) if (load.has(id)) load.set(id, load.get(id)! + 1);
    }
  }
  return load;
}

/** The config with the transfers it needs started; the same object when nothing needs to move. */
export function place(config: ClusterConfig): ClusterConfig {
  const available = config.servers.filter((s) => s.state === 'available').map((s) => s.id).sort();
  if (available.length === 0) return config;
  const isAvailable = new Set(available);
  const load = loads(config, available);
  const byLoad = (candidates: string[]) =>
    [...candidates].sort((a, b) => load.get(a)! - load.get(b)! || (a < b ? -1 : 1));
  let changed = false;
  let moves = config.spaces.flatMap((s) => s.partitions).filter((p) => p.joining?.replaces).length;

  const spaces = config.spaces.map((space) => {
    const partitions = space.partitions.map((p): PartitionInfo => {
      if (p.joining || !p.chain.some((id) => isAvailable.has(id))) return p;
      const outside = available.filter((id) => !p.chain.includes(id));
      if (outside.length === 0) return p;
      const [idlest] = byLoad(outside);
      // Missing replicas first.
      if (p.chain.length < space.tolerate + 1) {
        load.set(idlest!, load.get(idlest!)! + 1);
        changed = true;
        return { ...p, joining: { server: idlest! } };
      }
      // Then balance: move from the busiest member of this chain if that evens things out by at least one.
      const busiest = byLoad(p.chain.filter((id) => isAvailable.has(id))).at(-1)!;
      if (moves < movesMax && load.get(busiest)! - load.get(idlest!)! >= 2) {
        moves++;
        load.set(idlest!, load.get(idlest!)! + 1);
        load.set(busiest, load.get(busiest)! - 1);
        changed = true;
        return { ...p, joining: { server: idlest!, replaces: busiest } };
      }
      return p;
    });
    return { ...space, partitions };
  });
  return changed ? { ...config, spaces } : config;
}

// Which daemons' snapshots a backup copies. After the backup's quiesce every live replica of a partition is
// identical, so one copy per partition is enough (--one-replica, the default: a backup does not cost F+1 times
// the data); a restored cluster rebuilds the other replicas by state transfer. --all-replicas copies all.
import type { ClusterConfig } from '../../shared/config.js';

export type ReplicaChoice = 'one' | 'all';

/** partition ("space/partition") → the snapshotted servers holding it. */
export function replicasAtCut(config: ClusterConfig, snapshotted: string[]): Map<string, string[]> {
  const taken = new Set(snapshotted);
  return new Map(
    config.spaces.flatMap((s) => s.partitions.map((p, i): [string, string[]] => [`${s.name}/${i}`, p.chain.filter((id) => taken.has(id))])),
  );
}

/** The servers to copy: all of them, or a small set covering every partition (greedy set cover). */
export function serversToCopy(replicas: Map<string, string[]>, snapshotted: string[], choice: ReplicaChoice): string[] {
  if (choice === 'all') return [...snapshotted];
  const uncovered = new Set(replicas.keys());
  const chosen: string[] = [];
  while (uncovered.size > 0) {
    let best: string | undefined;
    let bestCount = 0;
    for (const id of snapshotted) {
      if (chosen.includes(id)) continue;
      const count = [...uncovered].filter((p) => replicas.get(p)!.includes(id)).length;
      if (count > bestCount) [best, bestCount] = [id, count];
    }
    if (!best) break; // a partition no snapshot holds: the coordinator refuses such backups, so this is defensive
    chosen.push(best);
    for (const p of [...uncovered]) if (replicas.get(p)!.includes(best)) uncovered.delete(p);
  }
  return chosen;
}

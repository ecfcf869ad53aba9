// What a new config changes, in words for the debug log: each chain that changed (members, a joining member, a
// leaving tail) and each server whose state changed. Pure, so it is a unit test.
import type { ClusterConfig, PartitionInfo } from '../shared/config.js';

export interface ConfigChange {
  what: string;
  [field: string]: unknown;
}

const chainText = (p: PartitionInfo | undefined) =>
  p === undefined
    ? '(none)'
    : `[${p.chain.join(' > ')}]${p.joining ? ` + joining ${p.joining.server}${p.joining.replaces ? ` (replaces ${p.joining.replaces})` : ''}` : ''}${p.leaving ? `, ${p.leaving} leaving` : ''}`;

export function configChanges(before: ClusterConfig, after: ClusterConfig): ConfigChange[] {
  const changes: ConfigChange[] = [];
  const stateBefore = new Map(before.servers.map((s) => [s.id, s.state]));
  for (const server of after.servers) {
    const was = stateBefore.get(server.id);
    if (was !== server.state) changes.push({ what: 'server', serverId: server.id, from: was ?? '(new)', to: server.state });
  }
  for (const server of before.servers) {
    if (!after.servers.some((s) => s.id === server.id)) changes.push({ what: 'server', serverId: server.id, from: server.state, to: '(forgotten)' });
  }
  const spacesBefore = new Map(before.spaces.map((s) => [s.id, s]));
  for (const space of after.spaces) {
    const old = spacesBefore.get(space.id);
    space.partitions.forEach((p, partition) => {
      const from = chainText(old?.partitions[partition]);
      const to = chainText(p);
      if (from !== to) changes.push({ what: 'chain', space: space.name, partition, from, to });
    });
  }
  if (Boolean(before.freeze) !== Boolean(after.freeze)) changes.push({ what: after.freeze ? 'freeze' : 'thaw', ...(after.freeze ? { backup: after.freeze.name } : {}) });
  return changes;
}

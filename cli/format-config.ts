// show-config's text for people.
import type { ClusterConfig } from '../shared/config.js';
import type { CoordinatorsInfo } from '../shared/protocol.js';

/**
 * `cutOff`: the daemons out of their chains because another cannot reach them, with why (kv status);
 * `coordinators`: who leads and where the config lives.
 */
export function formatConfig(config: ClusterConfig, cutOff: Record<string, string> = {}, coordinators?: CoordinatorsInfo): string {
  const lines = [
    `cluster ${config.clusterId}`,
    `version ${config.version}`,
    `epoch ${config.epoch ?? 0}`,
    ...(coordinators ? formatCoordinators(coordinators) : []),
    `flags ${config.readOnly ? 'read-only' : 'read-write'}`,
    `servers (${config.servers.length})`,
    ...config.servers.map((s) => `  server ${s.id} ${s.address} ${s.state}${cutOff[s.id] ? ` (cut off: ${cutOff[s.id]})` : ''}`),
    `spaces (${config.spaces.length})`,
  ];
  for (const space of config.spaces) {
    lines.push(`  space ${space.name} (id ${space.id}, ${space.partitions.length} partitions, tolerate ${space.tolerate})`);
    space.partitions.forEach((p, i) => {
      const joining = p.joining ? `  (transfer to ${p.joining.server}${p.joining.replaces ? `, replacing ${p.joining.replaces}` : ''})` : '';
      const leaving = p.leaving ? `  (${p.leaving} leaving)` : '';
      lines.push(`    partition ${i}: ${p.chain.length ? p.chain.join(' -> ') : '(none)'}${joining}${leaving}`);
    });
  }
  const transfers = config.spaces.flatMap((s) => s.partitions).filter((p) => p.joining).length;
  if (transfers > 0) lines.push(`transfers in progress: ${transfers}`);
  const missing = config.servers.filter((s) => s.state !== 'available');
  if (missing.length > 0) lines.push(`not available: ${missing.map((s) => s.id).join(' ')}`);
  return lines.join('\n');
}

function formatCoordinators(info: CoordinatorsInfo): string[] {
  const store = info.store.kind === 'etcd' ? `etcd ${info.store.endpoints.join(',')} prefix ${info.store.prefix}` : `local ${info.store.dataDir}`;
  const members = info.members.includes(info.leader) ? info.members : [info.leader, ...info.members];
  return [
    `store ${store}`,
    `coordinators (${members.length})`,
    ...members.map((m) => `  coordinator ${m}${m === info.leader ? ` leader (epoch ${info.epoch})` : ' follower'}`),
  ];
}

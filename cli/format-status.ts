// kv status: what an operator checks first, for people. Derived from the coordinator's status alone.
import type { ClusterConfig } from '../shared/config.js';
import type { ClusterStatus } from '../shared/protocol.js';

const ago = (iso: string, now: number) => {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};

/** Partitions whose chain is shorter than tolerate + 1 live members, per space. */
export function degradedChains(config: ClusterConfig): Array<{ space: string; partition: number; live: number; want: number }> {
  const up = new Set(config.servers.filter((s) => s.state === 'available').map((s) => s.id));
  return config.spaces.flatMap((space) =>
    space.partitions.flatMap((p, partition) => {
      const live = p.chain.filter((id) => up.has(id)).length;
      return live < space.tolerate + 1 ? [{ space: space.name, partition, live, want: space.tolerate + 1 }] : [];
    }),
  );
}

/** The daemon in the most chains (reads go to tails, so tails are counted apart), or undefined with none. */
export function busiest(config: ClusterConfig): { serverId: string; address: string; chains: number; tails: number } | undefined {
  const counts = new Map<string, { chains: number; tails: number }>();
  for (const p of config.spaces.flatMap((s) => s.partitions)) {
    p.chain.forEach((id, i) => {
      const c = counts.get(id) ?? { chains: 0, tails: 0 };
      c.chains++;
      if (i === p.chain.length - 1) c.tails++;
      counts.set(id, c);
    });
  }
  const [top] = [...counts].sort(([a, x], [b, y]) => y.chains - x.chains || y.tails - x.tails || (a < b ? -1 : 1));
  if (!top) return undefined;
  const server = config.servers.find((s) => s.id === top[0]);
  return { serverId: top[0], address: server?.address ?? '?', ...top[1] };
}

export function formatStatus(status: ClusterStatus, now = Date.now()): string {
  const { config } = status;
  const up = config.servers.filter((s) => s.state === 'available').length;
  const degraded = degradedChains(config);
  const transfers = config.spaces.flatMap((s) => s.partitions).filter((p) => p.joining).length;
  const cutOff = Object.keys(status.cutOff ?? {});
  const top = busiest(config);
  const last = status.lastBackup;
  const lines = [
    `cluster ${config.clusterId}, config ${config.version} (epoch ${config.epoch ?? 0})${config.readOnly ? ', READ-ONLY' : ''}`,
    ...(status.coordinators ? [`coordinators: ${status.coordinators.members.length}, leader ${status.coordinators.leader} (${status.coordinators.store.kind} store)`] : []),
    `servers up: ${up} of ${config.servers.length}${up < config.servers.length ? ` (down: ${config.servers.filter((s) => s.state !== 'available').map((s) => `${s.id} ${s.state}`).join(', ')})` : ''}`,
    ...(cutOff.length > 0 ? [`cut off: ${cutOff.join(', ')}`] : []),
    `chains degraded: ${degraded.length}${degraded.length > 0 ? ` (${degraded.slice(0, 5).map((d) => `${d.space}/${d.partition} ${d.live} of ${d.want}`).join(', ')}${degraded.length > 5 ? ', …' : ''})` : ''}`,
    `transfers in progress: ${transfers}`,
    `backup: ${status.lock ? `${status.lock.name} running (owner ${status.lock.owner}, since ${status.lock.startedAt})` : 'none running'}; last: ${
      last ? `${last.name} ${last.ok ? 'ok' : 'FAILED'} ${ago(last.endedAt, now)}${last.ok ? '' : ` (${last.error})`}` : 'none since this coordinator leads'}`,
    `busiest daemon: ${top ? `${top.serverId} ${top.address} (${top.chains} chains, tail of ${top.tails})` : 'none (no spaces)'}`,
  ];
  return lines.join('\n');
}

// When a starting coordinator may let placement drop daemons that have not come back. Sessions do not survive a
// restart, so every daemon looks down until it registers again; one that was serving before may still hold a read
// lease the previous process granted, and a daemon that merely reconnects late must not lose its place. So the
// coordinator waits for every server that was available when the state was saved, or until the failure timeout
// has passed since it began listening (every such lease was granted before that, so it has run out).
import type { ClusterConfig } from '../shared/config.js';

/** The servers to wait for: those available in the saved state (the config before sessions were reset). */
export const awaitedServers = (saved: ClusterConfig): ReadonlySet<string> =>
  new Set(saved.servers.filter((s) => s.state === 'available').map((s) => s.id));

/**
 * Whether placement may drop down daemons now: every awaited server registered again (or shut down on purpose,
 * refusing reads first), or the failure timeout has passed. A server no longer in the config is not waited for.
 */
export function isSettled(config: ClusterConfig, awaited: ReadonlySet<string>, listeningForMs: number, graceMs: number): boolean {
  if (listeningForMs >= graceMs) return true;
  return config.servers.every((s) => !awaited.has(s.id) || s.state !== 'not_available');
}

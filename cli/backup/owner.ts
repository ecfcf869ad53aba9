// Who runs a backup, as the backup lock, each snapshot's manifest and a partial backup directory record it:
// "kv backup-manager (pid 123 on db1)". Readable for people; parsed back to tell whether that run is still alive,
// which can only be proved for a process on this host.
import { hostname } from 'node:os';

export const ownerName = (tool: string) => `${tool} (pid ${process.pid} on ${hostname()})`;

const pattern = /^(.+) \(pid (\d+) on (.+)\)$/;

export function parseOwner(owner: string): { tool: string; pid: number; host: string } | undefined {
  const match = pattern.exec(owner);
  return match ? { tool: match[1]!, pid: Number(match[2]), host: match[3]! } : undefined;
}

/** True only when `owner` names a process of this host that no longer runs (pids are not reused quickly). */
export function provedGone(owner: string): boolean {
  const parsed = parseOwner(owner);
  if (!parsed || parsed.host !== hostname() || parsed.pid === process.pid) return false;
  try {
    process.kill(parsed.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

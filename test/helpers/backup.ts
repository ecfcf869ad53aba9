// Backups and restores for tests: run backup-manager as a process, restore a backup onto new ports and dirs.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackupSummary } from '../../cli/backup/manager.js';
import { Client } from '../../shared/client.js';
import { kv, startCoordinator, startDaemon, tempDir, waitFor, type CoordinatorHandle, type DaemonHandle, type TestLike } from './cluster.js';

export async function backupManager(t: TestLike, coordinator: string, root: string, args: string[] = []) {
  const result = await kv(t, ['backup-manager', '--backup-dir', root, '--coordinator', coordinator, '--json', ...args]);
  if (result.code !== 0) throw new Error(`backup-manager exited ${result.code}: ${result.stderr.slice(-1000)}`);
  return JSON.parse(result.stdout) as BackupSummary;
}

export const readSummary = (backupDir: string) => JSON.parse(readFileSync(join(backupDir, 'backup.json'), 'utf8')) as BackupSummary;

export interface Restored {
  coordinator: CoordinatorHandle;
  daemons: DaemonHandle[];
  client: Client;
}

/** Restores DIR/<ts> the way an operator would: copy each server's directory, start a coordinator from the saved state, start daemons on the copies. */
export async function restore(t: TestLike, backupDir: string, serverIds: string[]): Promise<Restored> {
  const root = tempDir(t, 'kv-restore-');
  const coordinator = await startCoordinator(t, {
    dataDir: join(root, 'coordinator'),
    args: ['--restore', join(backupDir, 'coordinator.bin')],
  });
  const daemons: DaemonHandle[] = [];
  for (const id of serverIds) {
    const copy = join(root, id);
    cpSync(join(backupDir, id), copy, { recursive: true });
    daemons.push(await startDaemon(t, coordinator.address, { dataDir: copy }));
  }
  const client = await Client.connect(coordinator.address, { timeoutMs: 30_000 });
  t.teardown(() => client.close());
  // Replicas that were not copied leave the chains once the coordinator settles; a partition with no copy at all
  // (a partial restore) keeps its chain and answers UNAVAILABLE.
  await waitFor('every restored daemon to be available, and chains with a live replica to hold only live ones', async () => {
    const config = await client.showConfig();
    const up = new Set(config.servers.filter((s) => s.state === 'available').map((s) => s.id));
    const settledChain = (chain: string[]) => chain.every((id) => up.has(id)) || !chain.some((id) => up.has(id));
    return serverIds.every((id) => up.has(id)) && config.spaces.every((s) => s.partitions.every((p) => settledChain(p.chain)));
  }, 30_000);
  return { coordinator, daemons, client };
}

/** A PATH whose rsync is the real one at about 100 KB/s. */
export function slowRsyncPath(t: TestLike): string {
  const real = spawnSync('sh', ['-c', 'command -v rsync'], { encoding: 'utf8' }).stdout.trim();
  const dir = tempDir(t, 'kv-slow-rsync-');
  writeFileSync(join(dir, 'rsync'), `#!/bin/sh\nexec ${real} --bwlimit=100 "$@"\n`);
  chmodSync(join(dir, 'rsync'), 0o755);
  return `${dir}:${process.env.PATH}`;
}

/** Pids of processes whose command line mentions `text`. */
export function processesMentioning(text: string): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).flatMap((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text) ? [Number(pid)] : [];
    } catch {
      return []; // gone meanwhile
    }
  });
}

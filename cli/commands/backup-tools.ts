// Offline and housekeeping backup commands: verify-backup, list-backups, list-snapshots, backup-release.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { coordinatorOption, jsonOption } from '../options.js';
import { checkSnapshotName } from '../../shared/names.js';
import { fail, withClient } from '../run.js';
import { verifyBackup } from '../backup/verify.js';
import * as layout from '../backup/layout.js';
import type { BackupSummary } from '../backup/manager.js';
import { formatBytes } from '../backup/report.js';

export const verifyBackupCommand: CommandModule<object, { dir: string; json: boolean }> = {
  command: 'verify-backup <dir>',
  describe: 'check every file of a backup against its manifest and open each server copy as a database (exit 0 only if intact)',
  builder: (y) => jsonOption(y).positional('dir', { type: 'string', demandOption: true, describe: 'DIR/<ts>' }),
  handler: async (argv) => {
    try {
      const verdict = await verifyBackup(layout.existingDir(resolve(argv.dir), 'the backup'));
      if (argv.json) process.stdout.write(JSON.stringify(verdict, null, 2) + '\n');
      else {
        for (const s of verdict.servers) {
          process.stdout.write(
            s.ok
              ? `ok   ${s.serverId}: ${s.files} files, ${formatBytes(s.bytes ?? 0)}, ${s.entries} entries\n`
              : `FAIL ${s.serverId}: ${s.problem}\n`,
          );
        }
        for (const p of verdict.problems) process.stdout.write(`FAIL ${p}\n`);
        process.stdout.write(verdict.ok ? `backup ${argv.dir} is intact\n` : `backup ${argv.dir} is damaged\n`);
      }
      process.exitCode = verdict.ok ? 0 : 1;
    } catch (error) {
      fail(error);
    }
  },
};

export const listBackupsCommand: CommandModule<object, { dir: string; json: boolean }> = {
  command: 'list-backups <dir>',
  describe: 'list the complete backups in a backup directory, with size, new bytes and freeze',
  builder: (y) => jsonOption(y).positional('dir', { type: 'string', demandOption: true }),
  handler: (argv) => {
    try {
      const root = layout.existingDir(resolve(argv.dir), 'the backup directory');
      const latest = layout.previousBackup(root);
      const rows = layout.completeBackups(root).map((name) => {
        const s = JSON.parse(readFileSync(layout.summaryFile(layout.completeDir(root, name)), 'utf8')) as BackupSummary;
        return { name, servers: s.totals.servers, bytes: s.totals.bytes, newBytes: s.totals.copiedBytes, freezeMs: s.freeze.ms, latest: name === latest };
      });
      if (argv.json) {
        process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        return;
      }
      process.stdout.write('backup               servers  size        new         freeze\n');
      for (const r of rows) {
        process.stdout.write(
          `${r.name}  ${String(r.servers).padStart(7)}  ${formatBytes(r.bytes).padEnd(10)}  ${formatBytes(r.newBytes).padEnd(10)}  ${r.freezeMs.toFixed(1)} ms${r.latest ? '  (LATEST)' : ''}\n`,
        );
      }
    } catch (error) {
      fail(error);
    }
  },
};

export const backupReleaseCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; name: string }> = {
  command: 'backup-release <name>',
  describe: 'delete snapshot NAME on every daemon (after copying a hand-made backup)',
  builder: (y) => coordinatorOption(y).positional('name', { type: 'string', demandOption: true, coerce: (name: string) => checkSnapshotName(String(name)) }),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const results = await client.backupRelease(argv.name);
      for (const r of results) {
        process.stdout.write(`${r.serverId} ${r.error ? `not released: ${r.error}` : r.released ? 'released' : 'had no such snapshot'}\n`);
      }
      return results.some((r) => r.error) ? 1 : 0;
    }),
};

/** "3d 4h", "12m 5s", "7s": an age at a glance, its two largest units. */
function formatAge(ms: number): string {
  let rest = Math.max(0, Math.floor(ms / 1000));
  const parts: string[] = [];
  for (const [unit, seconds] of [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / seconds);
    rest -= n * seconds;
    if (n > 0 || (unit === 's' && parts.length === 0)) parts.push(`${n}${unit}`);
  }
  return parts.slice(0, 2).join(' ');
}

/** What a snapshot that is not sealed is, by its state (SnapshotInfo). */
const unsealedWhy: Record<string, string> = {
  prepared: 'prepared, not captured: a backup under way, or one that failed (released when the coordinator next sweeps)',
  captured: 'captured, not sealed: a backup under way, or one that failed',
  left: 'never sealed: left by a backup that failed or a daemon that restarted',
};

export const listSnapshotsCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; json: boolean }> = {
  command: 'list-snapshots',
  describe: "list every daemon's snapshots with age and owner (a dead backup-manager run's are released by the next run)",
  builder: (y) => jsonOption(coordinatorOption(y)),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const daemons = await client.listSnapshots();
      const now = Date.now();
      const rows = daemons.flatMap((d) =>
        d.snapshots.map((s) => ({ serverId: d.serverId, ...s, ageMs: now - Date.parse(s.capturedAt ?? s.createdAt) })),
      );
      if (argv.json) {
        process.stdout.write(JSON.stringify({ snapshots: rows, unreachable: daemons.filter((d) => d.error).map((d) => ({ serverId: d.serverId, error: d.error })) }, null, 2) + '\n');
      } else {
        process.stdout.write('server  snapshot              age      size        owner\n');
        for (const r of rows) {
          const age = Number.isNaN(r.ageMs) ? '-' : formatAge(r.ageMs);
          const owner = r.sealed ? (r.owner ?? '(not recorded)') : `${r.owner ?? '(owner unknown)'}, ${unsealedWhy[r.state]}`;
          process.stdout.write(`${r.serverId.padEnd(6)}  ${r.name.padEnd(20)}  ${age.padEnd(7)}  ${formatBytes(r.bytes).padEnd(10)}  ${owner}\n`);
        }
        for (const d of daemons.filter((x) => x.error)) process.stdout.write(`${d.serverId.padEnd(6)}  (cannot list: ${d.error})\n`);
      }
      return daemons.some((d) => d.error) ? 1 : 0;
    }),
};

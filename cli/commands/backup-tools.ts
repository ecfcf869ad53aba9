// Offline and housekeeping backup commands: verify-backup, list-backups, backup-release.
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
      const verdict = await verifyBackup(resolve(argv.dir));
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
      const root = resolve(argv.dir);
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

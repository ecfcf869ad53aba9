// The one module that knows a backup directory:
//   DIR/<ts>/coordinator.bin      the coordinator state at the cut
//   DIR/<ts>/<server-id>/         each daemon's snapshot (a valid daemon data dir, with manifest.json)
//   DIR/<ts>/backup.json          the summary; its presence is what makes <ts> complete
//   DIR/<ts>.partial/             a backup being built (never complete-looking); its .owner file names the run
//   DIR/LATEST                    the name of the newest complete backup
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { badRequest } from '../../shared/errors.js';

const tsPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

/** A backup's name: the UTC time, to the second. */
export const backupName = (date: Date = new Date()): string => date.toISOString().slice(0, 19);

export const completeDir = (root: string, ts: string) => join(root, ts);
export const partialDir = (root: string, ts: string) => join(root, `${ts}.partial`);
export const coordinatorFile = (backupDir: string) => join(backupDir, 'coordinator.bin');
export const serverDir = (backupDir: string, serverId: string) => join(backupDir, serverId);
export const summaryFile = (backupDir: string) => join(backupDir, 'backup.json');
export const ownerFile = (partialDir: string) => join(partialDir, '.owner');
export const latestFile = (root: string) => join(root, 'LATEST');

/** A directory the user named on the command line must exist: a typo is an error, not an empty listing. */
export function existingDir(path: string, what: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw badRequest(code === 'ENOENT' ? `${what} ${path} does not exist` : `cannot read ${what} ${path}: ${code}`);
  }
  if (!isDir) throw badRequest(`${what} ${path} is not a directory`);
  return path;
}

export const isComplete = (backupDir: string) => existsSync(summaryFile(backupDir));

/** Complete backups, oldest first. */
export function completeBackups(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((name) => tsPattern.test(name) && statSync(join(root, name)).isDirectory() && isComplete(join(root, name)))
    .sort();
}

/** The backup a new one links unchanged files against: LATEST when it names a complete backup, else the newest. */
export function previousBackup(root: string): string | undefined {
  try {
    const latest = readFileSync(latestFile(root), 'utf8').trim();
    if (tsPattern.test(latest) && isComplete(completeDir(root, latest))) return latest;
  } catch {
    // no LATEST yet
  }
  return completeBackups(root).at(-1);
}

/** The server ids a backup holds a copy for. */
export const serversIn = (backupDir: string): string[] =>
  readdirSync(backupDir).filter((name) => /^\d+$/.test(name) && statSync(join(backupDir, name)).isDirectory());

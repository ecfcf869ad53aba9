// The real rsync binary, for copying snapshots: -a --delete, --link-dest against the previous backup so unchanged
// files become hard links, --fsync where this rsync has it, and --info=progress2 parsed for progress. rsync dies
// with backup-manager (setpriv --pdeathsig), so a killed run leaves no copy running.
import { spawn, spawnSync } from 'node:child_process';
import { KvError } from '../../shared/errors.js';

export interface RsyncInfo {
  version: string;
  fsync: boolean;
  /**
   * util-linux's setpriv, to start rsync with PR_SET_PDEATHSIG: the kernel kills rsync when backup-manager dies,
   * even by SIGKILL (Node cannot set it on a child itself). Debian and most Linux systems have it.
   */
  setpriv: boolean;
}

/** Fails with one clear line when rsync is missing: checked before the cluster is frozen. */
export function checkRsync(): RsyncInfo {
  const result = spawnSync('rsync', ['--version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new KvError('BACKUP_FAILED', 'rsync is not installed or not on PATH (Debian: apt-get install rsync)');
  }
  const version = /version\s+(\S+)/.exec(result.stdout)?.[1] ?? 'unknown';
  const help = spawnSync('rsync', ['--help'], { encoding: 'utf8' }).stdout ?? '';
  const setpriv = spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true']).status === 0;
  return { version, fsync: help.includes('--fsync'), setpriv };
}

export interface CopyOptions {
  /** A local path or host:path, the directory whose contents are copied. */
  source: string;
  dest: string;
  linkDest: string | undefined;
  rsh: string | undefined;
  rsync: RsyncInfo;
  onProgress?: (bytes: number) => void;
}

export interface Copy {
  done: Promise<void>;
  cancel(): void;
}

export function copy(options: CopyOptions): Copy {
  const args = ['-a', '--delete', '--info=progress2', '--no-inc-recursive'];
  if (options.rsync.fsync) args.push('--fsync');
  if (options.linkDest) args.push(`--link-dest=${options.linkDest}`);
  if (options.rsh) args.push('-e', options.rsh);
  args.push(`${options.source}/`, `${options.dest}/`);
  const child = options.rsync.setpriv
    ? spawn('setpriv', ['--pdeathsig', 'KILL', 'rsync', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    // progress2 lines: "    1,234,567  45%  10.00MB/s    0:00:01 (xfr#3, to-chk=5/10)", separated by \r
    for (const line of chunk.split(/[\r\n]/)) {
      const match = /^\s*([\d,]+)\s+\d+%/.exec(line);
      if (match) options.onProgress?.(Number(match[1]!.replaceAll(',', '')));
    }
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new KvError('BACKUP_FAILED', `cannot run rsync: ${error.message}`)));
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else {
        const why = stderr.trim().split('\n').slice(-2).join(' ') || (signal ? `killed by ${signal}` : `exit ${code}`);
        reject(new KvError('BACKUP_FAILED', `rsync ${options.source} failed: ${why}`));
      }
    });
  });
  return { done, cancel: () => child.kill('SIGTERM') };
}

// The real rsync binary, for copying snapshots: -a --delete, --link-dest against the previous backup so unchanged
// files become hard links, and --info=progress2 parsed for progress. rsync dies with backup-manager (setpriv
// --pdeathsig), so a killed run leaves no copy running. No --fsync: rsync would sync each file before writing the
// next (a third of a local copy's time); the check after the copy, which reads every copied file anyway, fsyncs
// each on its hashing threads. A local copy skips rsync's own transfer checksum (--checksum-choice=none, about 40%
// of its time): the SHA-256 check of every file against the snapshot's manifest is the check that counts.
import { spawn, spawnSync } from 'node:child_process';
import { KvError } from '../../shared/errors.js';
import { rsyncIoTimeoutSeconds } from '../../shared/limits.js';

/**
 * The remote shell when the operator names none: ssh that notices a dead peer (a cut between the backup host and
 * a daemon host) within about 15 s instead of TCP's minutes, and never waits for a password nobody will type.
 */
export const defaultRsh = 'ssh -o BatchMode=yes -o ServerAliveInterval=5 -o ServerAliveCountMax=3';

/** rsync's name for a directory on `host` (an IPv6 address goes in brackets, or rsync reads `::` as its daemon syntax). */
export const remotePath = (host: string, path: string): string => (host.includes(':') ? `[${host}]:${path}` : `${host}:${path}`);

/**
 * Why rsync failed, in its own words and its remote shell's: every line it wrote to stderr except the generic
 * closing ones, which name no cause ("connection unexpectedly closed", "rsync error: ... (code N)"), unless they
 * are all there is. Bounded: a few lines.
 */
export function rsyncFailure(stderr: string): string {
  const lines = stderr.split(/[\r\n]+/).map((line) => line.trim()).filter(Boolean);
  const generic = /^rsync: connection unexpectedly closed|^rsync error: /i;
  const causes = lines.filter((line) => !generic.test(line));
  const chosen = causes.length > 0 ? causes.slice(0, 3) : lines.slice(-2);
  return [...new Set(chosen)].join('; ');
}

export interface RsyncInfo {
  version: string;
  /** Whether this rsync takes --checksum-choice (3.2.0 and later), so a local copy can skip its transfer checksum. */
  checksumChoice: boolean;
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
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const setpriv = spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true']).status === 0;
  return { version, checksumChoice: major > 3 || (major === 3 && minor >= 2), setpriv };
}

export interface CopyOptions {
  /** The directory whose contents are copied: a local path, or `host:path` (see remotePath). */
  source: string;
  /** Whether the source is on another host: then a remote shell (`rsh`, or defaultRsh) carries the copy. */
  remote: boolean;
  dest: string;
  linkDest: string | undefined;
  rsh: string | undefined;
  rsync: RsyncInfo;
  /** Seconds without any data after which rsync gives up (a hung peer); rsyncIoTimeoutSeconds by default. */
  ioTimeoutSeconds?: number;
  onProgress?: (bytes: number) => void;
}

export interface Copy {
  done: Promise<void>;
  cancel(): void;
}

export function copy(options: CopyOptions): Copy {
  const args = ['-a', '--delete', '--info=progress2', '--no-inc-recursive', `--timeout=${options.ioTimeoutSeconds ?? rsyncIoTimeoutSeconds}`];
  // Remote: the other end's rsync may not know the option; its checksum also guards the network hop.
  if (!options.remote && options.rsync.checksumChoice) args.push('--checksum-choice=none');
  if (options.linkDest) args.push(`--link-dest=${options.linkDest}`);
  if (options.remote) args.push('-e', options.rsh ?? defaultRsh);
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
        const why = rsyncFailure(stderr) || (signal ? `killed by ${signal}` : `exit ${code}`);
        reject(new KvError('BACKUP_FAILED', `rsync ${options.source} failed: ${why}`));
      }
    });
  });
  return { done, cancel: () => child.kill('SIGTERM') };
}

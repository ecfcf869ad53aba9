// Creating a directory a user named (a data dir, a backup dir). Node's mkdirSync({ recursive: true }) retries
// forever on some paths (under /proc it spins a core for minutes): this walks the path once, one mkdir per
// component, so a path that cannot be made fails at once with one line naming it and why.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KvError } from './errors.js';

export function makeDir(path: string, what: string): void {
  const target = resolve(path);
  const missing: string[] = [];
  for (let dir = target; ; dir = dirname(dir)) {
    let isDir: boolean;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' || dirname(dir) === dir) throw cannot(what, target, code ?? (error as Error).message);
      missing.unshift(dir);
      continue;
    }
    if (!isDir) throw cannot(what, target, `${dir} is not a directory`);
    break;
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Made meanwhile by someone else: fine if it is a directory.
      if (code === 'EEXIST' && statSync(dir).isDirectory()) continue;
      throw cannot(what, target, code ?? (error as Error).message);
    }
  }
}

const reasons: Record<string, string> = {
  ENOENT: 'the filesystem there takes no new directories',
  EACCES: 'permission denied',
  EPERM: 'not permitted',
  EROFS: 'a read-only filesystem',
  ENOTDIR: 'a part of the path is a file',
  ENOSPC: 'no space left',
};

const cannot = (what: string, path: string, why: string) =>
  new KvError('BAD_REQUEST', `cannot create ${what} ${path}: ${reasons[why] ? `${reasons[why]} (${why})` : why}`);

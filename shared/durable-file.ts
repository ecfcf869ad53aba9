// Files written for keeps (manifests, coordinator.bin, LATEST, backup.json): write NAME.part, fsync it, rename it
// over NAME, fsync the directory. A crash leaves the old file or the new one, never a torn one.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileDurably(path: string, data: string | Uint8Array): void {
  const part = `${path}.part`;
  const fd = openSync(part, 'w');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(part, path);
  fsyncPath(dirname(path));
}

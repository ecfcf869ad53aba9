// The one module that knows a daemon's data dir, used by the daemon and by offline tools (verify-backup):
//   DIR/leveldb/            the live database, opened by one daemon only (its key layout: key-layout.ts)
//   DIR/backups/NAME/       snapshots; each is itself a valid DIR (leveldb/ + manifest.json)
import { join } from 'node:path';

export const levelDir = (dataDir: string) => join(dataDir, 'leveldb');
export const backupsDir = (dataDir: string) => join(dataDir, 'backups');
export const snapshotDir = (dataDir: string, name: string) => join(backupsDir(dataDir), name);

// The one module that knows where things live in a daemon's data dir:
//   DIR/leveldb/            the live database (identity included), opened by this daemon only
//   DIR/backups/NAME/       snapshots (the backup issue): each one is itself a valid DIR
import { join } from 'node:path';

export const levelDir = (dataDir: string) => join(dataDir, 'leveldb');
export const backupsDir = (dataDir: string) => join(dataDir, 'backups');
export const snapshotDir = (dataDir: string, name: string) => join(backupsDir(dataDir), name);

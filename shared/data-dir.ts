// The one module that knows a daemon's data dir, used by the daemon and by offline tools (verify-backup):
//   DIR/format.json         the data format stamp, checked before anything else is opened (data-format.ts)
//   DIR/leveldb/            the live database, opened by one daemon only (its key layout: key-layout.ts)
//   DIR/backups/NAME/       snapshots; each is itself a valid DIR (leveldb/ + manifest.json)
//   DIR/manifest.json       only in a copy of a snapshot: the backup cut a restored daemon's data started from
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { manifestFileName, readManifest, type SnapshotManifest } from './snapshot-manifest.js';

export const levelDir = (dataDir: string) => join(dataDir, 'leveldb');
/** The manifest of the snapshot a data dir is a copy of (a restored daemon's); undefined for a daemon's own dir. */
export const copiedSnapshot = (dataDir: string): SnapshotManifest | undefined =>
  existsSync(join(dataDir, manifestFileName)) ? readManifest(dataDir) : undefined;
export const backupsDir = (dataDir: string) => join(dataDir, 'backups');
export const snapshotDir = (dataDir: string, name: string) => join(backupsDir(dataDir), name);

// The one module that knows a daemon's data dir, used by the daemon and by offline tools (verify-backup):
//   DIR/leveldb/            the live database, opened by one daemon only
//   DIR/backups/NAME/       snapshots; each is itself a valid DIR (leveldb/ + manifest.json)
// and the key layout inside the LevelDB:
//   0x00 <name>                                 daemon metadata (its identity)
//   0x01 <space id u32> <partition u16> <key>   a stored value: msgpack of its attribute map
import { join } from 'node:path';

export const levelDir = (dataDir: string) => join(dataDir, 'leveldb');
export const backupsDir = (dataDir: string) => join(dataDir, 'backups');
export const snapshotDir = (dataDir: string, name: string) => join(backupsDir(dataDir), name);

export const identityKey = Buffer.from('\x00identity', 'latin1');
export const dataTag = 0x01;
/** Every stored value's key lies in [dataKeysFrom, dataKeysTo). */
export const dataKeysFrom = Buffer.from([dataTag]);
export const dataKeysTo = Buffer.from([dataTag + 1]);

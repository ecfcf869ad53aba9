// The format of a data dir, stamped in DIR/format.json and checked before anything else in the dir is opened: a
// dir written by a newer kv is refused untouched (opening its LevelDB would already rewrite files), not misread.
//
// Why one stamp per dir and not a version byte per stored value: a value is read on every get and written on every
// put, and a data dir is only ever written by one kv at a time, so a per-value byte would cost space and a branch
// on the hot path to say what the dir's stamp says once. What a version covers:
//   daemon 1       the key layout of key-layout.ts; values as stored-value.ts lays them out (msgpack
//                  `[attrs, writer, ...earlier]`, or a bare attribute map from before request ids); completion
//                  records as completion-records.ts; the identity record (msgpack {serverId, clusterId, incarnation?}).
//                  A snapshot carries its daemon's stamp, so a backup's copies are checked the same way.
//   coordinator 1  DIR/state/, a LevelDB whose one key holds the state-file envelope (state-file.ts, versioned on
//                  its own, as coordinator.bin travels without its dir).
// A dir without a stamp was written before stamps were (format 1) or is new: it is stamped at open. A future
// format bumps its number here; reading an older one is then that version's migration to write.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvError } from './errors.js';
import { writeFileDurably } from './durable-file.js';

export type DataDirKind = 'daemon' | 'coordinator';

export const dataFormatVersions: Record<DataDirKind, number> = { daemon: 1, coordinator: 1 };
export const formatFileName = 'format.json';

const formatName = (kind: DataDirKind) => `kv-${kind}-data`;
export const formatFile = (dataDir: string) => join(dataDir, formatFileName);
export const formatStamp = (kind: DataDirKind): string =>
  `${JSON.stringify({ format: formatName(kind), formatVersion: dataFormatVersions[kind] })}\n`;

/**
 * Refuses `dataDir` unless it holds kv `kind` data of the format this kv reads; stamps a dir that has no stamp
 * yet. Reads one small file: bounded, and nothing else in the dir is touched first.
 */
export function checkDataFormat(dataDir: string, kind: DataDirKind): void {
  const path = formatFile(dataDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new KvError('DATA_DIR_INVALID', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    writeFileDurably(path, formatStamp(kind));
    return;
  }
  const invalid = (why: string) => new KvError('DATA_DIR_INVALID', `${dataDir} cannot be used as a kv ${kind} data dir: ${why}`);
  let stamp: { format?: unknown; formatVersion?: unknown };
  try {
    stamp = JSON.parse(text) as typeof stamp;
  } catch {
    throw invalid(`${formatFileName} is not JSON`);
  }
  if (typeof stamp !== 'object' || stamp === null) throw invalid(`${formatFileName} is not a format stamp`);
  const other = (Object.keys(dataFormatVersions) as DataDirKind[]).find((k) => k !== kind && stamp.format === formatName(k));
  if (other) throw invalid(`it is a ${other}'s data dir`);
  if (stamp.format !== formatName(kind)) throw invalid(`${formatFileName} names format ${JSON.stringify(stamp.format)}`);
  const version = stamp.formatVersion;
  const known = dataFormatVersions[kind];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw invalid(`${formatFileName} names format version ${JSON.stringify(version)}`);
  }
  if (version > known) {
    throw invalid(`it is in ${kind} data format ${version}, written by a newer kv; this kv reads format ${known}: run a kv that reads it`);
  }
  if (version < known) throw invalid(`it is in ${kind} data format ${version}, which this kv (format ${known}) cannot migrate`);
}

// A snapshot's manifest: who took it, at which config version, and every file's size and SHA-256. The daemon
// writes it next to the snapshot; the backup manager checks every copied file against it; verify-backup
// re-checks a stored backup. The snapshot directory (and its copy in a backup) is laid out like a daemon data dir.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { KvError } from './errors.js';

export const manifestFileName = 'manifest.json';
const formatName = 'kv-snapshot';
const formatVersion = 1;

export const SnapshotFile = Type.Object({
  /** Relative to the snapshot directory, '/'-separated. */
  path: Type.String(),
  bytes: Type.Integer({ minimum: 0 }),
  sha256: Type.String(),
});
export type SnapshotFile = Static<typeof SnapshotFile>;

export const SnapshotManifest = Type.Object({
  format: Type.Literal(formatName),
  formatVersion: Type.Literal(formatVersion),
  name: Type.String(),
  serverId: Type.String(),
  clusterId: Type.String(),
  configVersion: Type.Integer(),
  /** The freeze the snapshot was captured under. */
  freezeId: Type.String(),
  capturedAt: Type.String(),
  /** Who took the backup (absent in manifests written before it was recorded). */
  owner: Type.Optional(Type.String()),
  files: Type.Array(SnapshotFile),
});
export type SnapshotManifest = Static<typeof SnapshotManifest>;

const check = TypeCompiler.Compile(SnapshotManifest);

export const newManifest = (fields: Omit<SnapshotManifest, 'format' | 'formatVersion'>): SnapshotManifest => ({
  format: formatName,
  formatVersion,
  ...fields,
});

export function readManifest(dir: string): SnapshotManifest {
  const path = join(dir, manifestFileName);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new KvError('DATA_DIR_INVALID', `cannot read ${path}: ${(error as Error).message}`);
  }
  if (!check.Check(parsed)) throw new KvError('DATA_DIR_INVALID', `${path} is not a kv snapshot manifest`);
  return parsed;
}

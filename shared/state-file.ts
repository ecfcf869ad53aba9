// The coordinator's saved state: the bytes kept in its data dir and a backup's coordinator.bin (read by the
// coordinator on restore and by verify-backup).
// An envelope with a format name, a format version and the SHA-256 of the packed config, so a damaged or foreign
// file is refused with a clear error instead of starting a wrong cluster.
import { createHash } from 'node:crypto';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ClusterConfig } from './config.js';
import { pack, unpack } from './codec.js';
import { KvError } from './errors.js';

const formatName = 'kv-coordinator-state';
const formatVersion = 1;
const configCheck = TypeCompiler.Compile(ClusterConfig);

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export function encodeState(config: ClusterConfig): Buffer {
  const state = pack(config);
  return pack({ format: formatName, formatVersion, sha256: sha256(state), state });
}

export function decodeState(bytes: Uint8Array, source: string): ClusterConfig {
  const invalid = (why: string) => new KvError('DATA_DIR_INVALID', `${source} is not a kv coordinator state: ${why}`);
  let envelope: { format?: unknown; formatVersion?: unknown; sha256?: unknown; state?: unknown };
  try {
    envelope = unpack(bytes) as typeof envelope;
  } catch {
    throw invalid('not msgpack');
  }
  if (typeof envelope !== 'object' || envelope === null || envelope.format !== formatName) {
    throw invalid('wrong format name');
  }
  if (typeof envelope.formatVersion === 'number' && envelope.formatVersion > formatVersion) {
    throw invalid(`format version ${envelope.formatVersion}, written by a newer kv; this kv reads version ${formatVersion}`);
  }
  if (envelope.formatVersion !== formatVersion) {
    throw invalid(`format version ${String(envelope.formatVersion)}; this kv reads version ${formatVersion}`);
  }
  if (!(envelope.state instanceof Uint8Array)) throw invalid('no state');
  if (sha256(envelope.state) !== envelope.sha256) throw invalid('checksum mismatch (the file is damaged)');
  let config: unknown;
  try {
    config = unpack(envelope.state);
  } catch {
    throw invalid('the state inside is not msgpack');
  }
  if (!configCheck.Check(config)) throw invalid('the config inside does not match the schema');
  return config;
}

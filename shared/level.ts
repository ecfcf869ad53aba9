// Opening a LevelDB, and the one place where LevelDB's error codes become kv's.
import { ClassicLevel } from 'classic-level';
import { KvError } from './errors.js';

export type Level = ClassicLevel<Buffer, Buffer>;

export interface LevelOptions {
  createIfMissing?: boolean;
  /** LevelDB's write_buffer_size: how much the memtable (and its log) holds before it becomes a table file. */
  writeBufferBytes?: number;
}

export async function openLevel(location: string, options: LevelOptions = {}): Promise<Level> {
  const db = new ClassicLevel<Buffer, Buffer>(location, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    ...(options.writeBufferBytes ? { writeBufferSize: options.writeBufferBytes } : {}),
  });
  try {
    await db.open({ createIfMissing: options.createIfMissing ?? true });
  } catch (error) {
    throw levelError(error, location);
  }
  return db;
}

export function levelError(error: unknown, location: string): KvError {
  const err = error as { code?: string; cause?: { code?: string; message?: string }; message?: string };
  const code = err.cause?.code ?? err.code;
  const detail = err.cause?.message ?? err.message ?? String(error);
  if (code === 'LEVEL_LOCKED') {
    return new KvError('DATA_DIR_LOCKED', `${location} is in use by another process (LevelDB lock held)`);
  }
  if (code === 'LEVEL_CORRUPTION' || code === 'LEVEL_INVALID_ARGUMENT' || code === 'LEVEL_DATABASE_NOT_OPEN') {
    return new KvError('DATA_DIR_INVALID', `cannot open the database in ${location}: ${detail}`);
  }
  return new KvError('INTERNAL', `LevelDB failed in ${location}: ${detail}`);
}

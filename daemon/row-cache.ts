// The daemon's row cache: stored values by LevelDB key, so that a read of a recently used key (a client's get,
// or the read before a write) skips LevelDB. Under a skewed load most operations touch a few hot keys, and a
// LevelDB read costs 3 to 7 µs where a hit here costs well under one.
//
// It holds what LevelDB holds and nothing else: Storage fills it from reads, updates it only once a write is
// committed, and empties it after deleting a range. Values are kept as their stored bytes, in buffers of their
// own (a view into a larger buffer would keep all of it alive), least recently used first out, bounded in bytes.

/** What one entry costs besides its key and value bytes: the Map entry, the key string, the Buffer object. */
const entryOverheadBytes = 160;

export class RowCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly bytesMax: number) {}

  get(id: string): Buffer | undefined {
    const value = this.entries.get(id);
    if (value !== undefined) {
      // Map iterates in insertion order: re-inserting makes this the most recently used entry.
      this.entries.delete(id);
      this.entries.set(id, value);
    }
    return value;
  }

  /** `value` must not be a view into a larger buffer (see `own`). */
  set(id: string, value: Buffer): void {
    this.delete(id);
    const size = id.length + value.length + entryOverheadBytes;
    if (size > this.bytesMax) return;
    this.entries.set(id, value);
    this.bytes += size;
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.bytesMax) break;
      this.entries.delete(oldest);
      this.bytes -= oldest.length + old.length + entryOverheadBytes;
    }
  }

  delete(id: string): void {
    const value = this.entries.get(id);
    if (value === undefined) return;
    this.entries.delete(id);
    this.bytes -= id.length + value.length + entryOverheadBytes;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/** A copy of `bytes` in a buffer of its own, unless it already is one. */
export function own(bytes: Buffer): Buffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

/** The cache's name for a LevelDB key. */
export const rowId = (key: Buffer): string => key.toString('latin1');

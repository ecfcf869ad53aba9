// Reads a LevelDB MANIFEST: which table files the database's current version uses, and which write-ahead logs
// recovery would replay. A snapshot links exactly these tables; linking any other *.ldb risks picking up a file
// a compaction is still writing (see ../shared/REFERENCE.md).
//
// Format (LevelDB db/log_format.h, db/version_edit.cc): 32 KiB blocks of records, each with a 7-byte header
// (crc32c, length u16 LE, type); a logical record is FULL or FIRST..MIDDLE..LAST. Each logical record is one
// VersionEdit: a sequence of (varint tag, fields).

const blockBytes = 32 * 1024;
const headerBytes = 7;
const enum RecordType { Zero = 0, Full = 1, First = 2, Middle = 3, Last = 4 }
const enum Tag { Comparator = 1, LogNumber = 2, NextFileNumber = 3, LastSequence = 4, CompactPointer = 5, DeletedFile = 6, NewFile = 7, PrevLogNumber = 9 }

export interface LevelState {
  /** Table files of the current version: file number → size in bytes. */
  tables: Map<number, number>;
  logNumber: number;
  prevLogNumber: number;
  nextFileNumber: number;
}

/** Splits a log-format file into its logical records. A torn record at the end (being written) ends the list. */
export function readRecords(bytes: Uint8Array): Uint8Array[] {
  const records: Uint8Array[] = [];
  let pending: Uint8Array[] = [];
  let offset = 0;
  while (offset + headerBytes <= bytes.length) {
    const leftInBlock = blockBytes - (offset % blockBytes);
    if (leftInBlock < headerBytes) {
      offset += leftInBlock; // block trailer: zero padding
      continue;
    }
    const length = bytes[offset + 4]! | (bytes[offset + 5]! << 8);
    const type = bytes[offset + 6]! as RecordType;
    const start = offset + headerBytes;
    if (start + length > bytes.length) break;
    const data = bytes.subarray(start, start + length);
    offset = start + length;
    switch (type) {
      case RecordType.Full:
        records.push(data);
        pending = [];
        break;
      case RecordType.First:
        pending = [data];
        break;
      case RecordType.Middle:
        if (pending.length) pending.push(data);
        break;
      case RecordType.Last:
        if (pending.length) records.push(Buffer.concat([...pending, data]));
        pending = [];
        break;
      default:
        offset += leftInBlock - headerBytes - length; // zero/preallocated space: skip to the next block
    }
  }
  return records;
}

class Reader {
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {}
  get done() {
    return this.offset >= this.bytes.length;
  }
  varint(): number {
    let result = 0;
    let factor = 1;
    for (;;) {
      if (this.offset >= this.bytes.length) throw new Error('truncated varint in MANIFEST');
      const byte = this.bytes[this.offset++]!;
      result += (byte & 0x7f) * factor;
      if ((byte & 0x80) === 0) return result;
      factor *= 128;
    }
  }
  skipSlice(): void {
    const length = this.varint();
    this.offset += length;
  }
}

export function parseManifest(bytes: Uint8Array): LevelState {
  const state: LevelState = { tables: new Map(), logNumber: 0, prevLogNumber: 0, nextFileNumber: 0 };
  for (const record of readRecords(bytes)) {
    const r = new Reader(record);
    while (!r.done) {
      const tag = r.varint() as Tag;
      switch (tag) {
        case Tag.Comparator:
          r.skipSlice();
          break;
        case Tag.LogNumber:
          state.logNumber = r.varint();
          break;
        case Tag.NextFileNumber:
          state.nextFileNumber = r.varint();
          break;
        case Tag.LastSequence:
          r.varint();
          break;
        case Tag.CompactPointer:
          r.varint();
          r.skipSlice();
          break;
        case Tag.DeletedFile:
          r.varint();
          state.tables.delete(r.varint());
          break;
        case Tag.NewFile: {
          r.varint(); // level
          const number = r.varint();
          const size = r.varint();
          r.skipSlice();
          r.skipSlice();
          state.tables.set(number, size);
          break;
        }
        case Tag.PrevLogNumber:
          state.prevLogNumber = r.varint();
          break;
        default:
          throw new Error(`unknown tag ${tag as number} in MANIFEST`);
      }
    }
  }
  return state;
}

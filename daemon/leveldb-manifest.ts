// Reads a LevelDB MANIFEST: which table files the database's current version uses, and which write-ahead logs
// recovery would replay. A snapshot links exactly these tables; linking any other *.ldb risks picking up a file
// a compaction is still writing (see ../shared/REFERENCE.md).
//
// Format (LevelDB db/log_format.h, db/log_reader.cc, db/version_edit.cc): 32 KiB blocks of records, each with a
// 7-byte header (masked CRC32C of type + payload, length u16 LE, type); a logical record is FULL or
// FIRST..MIDDLE..LAST, and never spans a block. Each logical record is one VersionEdit: a sequence of
// (varint tag, fields). A record cut short by the end of the file is one being written (the MANIFEST is read
// while LevelDB appends to it): it ends the list, as in LevelDB's own reader. Anything else that does not check
// out (a CRC mismatch, a length past its block, an unknown type or tag) is damage: LevelDB itself would refuse
// to open the database, so a snapshot of it must not be taken.
import { crc32c } from '@node-rs/crc32';
import { KvError } from '../shared/errors.js';

const blockBytes = 32 * 1024;
const headerBytes = 7;
const enum RecordType { Zero = 0, Full = 1, First = 2, Middle = 3, Last = 4 }
const enum Tag { Comparator = 1, LogNumber = 2, NextFileNumber = 3, LastSequence = 4, CompactPointer = 5, DeletedFile = 6, NewFile = 7, PrevLogNumber = 9 }

export interface LevelState {
  /** Table files of the current version: file number → size in bytes. */
  tables: Map<number, number>;
  /** The level of each table file of the current version (file number → level). */
  levels: Map<number, number>;
  logNumber: number;
  prevLogNumber: number;
  nextFileNumber: number;
}

const damaged = (why: string) => new KvError('DATA_DIR_INVALID', `LevelDB MANIFEST damaged: ${why}`);

/** LevelDB stores CRCs masked (util/crc32c.h), so a CRC of data that holds CRCs is not itself a likely CRC. */
const maskDelta = 0xa282ead8;
export const maskedCrc = (type: number, payload: Uint8Array): number => {
  const crc = crc32c(Buffer.from(payload.buffer, payload.byteOffset, payload.length), crc32c(Buffer.of(type)));
  return (((crc >>> 15) | (crc << 17)) + maskDelta) >>> 0;
};

/** Logical records read from a log-format file, and where the last whole one ends (where to read on from). */
export interface Records {
  records: Uint8Array[];
  /** Byte offset in the file just past the last whole logical record: a record being written starts here. */
  end: number;
}

/**
 * Splits a log-format file into its logical records. A torn record at the end (being written) ends the list.
 * `bytes` may be the file from byte `from` on, `from` being where an earlier read ended (the end of a whole
 * record): blocks are counted from the start of the file.
 */
export function readRecordsFrom(bytes: Uint8Array, from: number): Records {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const records: Uint8Array[] = [];
  let pending: Uint8Array[] | undefined;
  let offset = 0;
  let end = 0;
  while (offset + headerBytes <= view.length) {
    const at = from + offset;
    const blockEnd = offset - (at % blockBytes) + blockBytes;
    if (blockEnd - offset < headerBytes) {
      offset = blockEnd; // block trailer: zero padding
      continue;
    }
    const length = view.readUInt16LE(offset + 4);
    const type = view[offset + 6]!;
    const start = offset + headerBytes;
    if (start + length > view.length) break;
    if (start + length > blockEnd) throw damaged(`the record at byte ${at} is longer than its block`);
    if (type === RecordType.Zero && length === 0) {
      offset = blockEnd; // preallocated space (an mmap-written file): nothing more in this block
      continue;
    }
    const data = view.subarray(start, start + length);
    if (view.readUInt32LE(offset) !== maskedCrc(type, data)) throw damaged(`checksum mismatch in the record at byte ${at}`);
    offset = start + length;
    switch (type) {
      case RecordType.Full:
        if (pending) throw damaged(`a record at byte ${at} interrupts a fragmented one`);
        records.push(data);
        end = offset;
        break;
      case RecordType.First:
        if (pending) throw damaged(`a record at byte ${at} interrupts a fragmented one`);
        pending = [data];
        break;
      case RecordType.Middle:
      case RecordType.Last:
        if (!pending) throw damaged(`a fragment at byte ${at} has no first fragment`);
        pending.push(data);
        if (type === RecordType.Last) {
          records.push(Buffer.concat(pending));
          pending = undefined;
          end = offset;
        }
        break;
      default:
        throw damaged(`unknown record type ${type} at byte ${at}`);
    }
  }
  return { records, end: from + end };
}

/** Splits a whole log-format file into its logical records (see readRecordsFrom). */
export const readRecords = (bytes: Uint8Array): Uint8Array[] => readRecordsFrom(bytes, 0).records;

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
      if (this.offset >= this.bytes.length) throw damaged('a record ends inside a number');
      const byte = this.bytes[this.offset++]!;
      result += (byte & 0x7f) * factor;
      if ((byte & 0x80) === 0) return result;
      factor *= 128;
    }
  }
  skipSlice(): void {
    const length = this.varint();
    if (this.offset + length > this.bytes.length) throw damaged('a record ends inside a string');
    this.offset += length;
  }
}

/** A MANIFEST read up to `end`: the version its records make, and where the next record will start. */
export interface ManifestReading {
  state: LevelState;
  /** The MANIFEST's bytes that hold `state`: every whole record, none being written. */
  end: number;
}

const emptyState = (): LevelState => ({ tables: new Map(), levels: new Map(), logNumber: 0, prevLogNumber: 0, nextFileNumber: 0 });

export function parseManifest(bytes: Uint8Array): LevelState {
  return readVersion(bytes).state;
}

/** Reads a whole MANIFEST. */
export function readVersion(bytes: Uint8Array): ManifestReading {
  return readVersionOn({ state: emptyState(), end: 0 }, bytes);
}

/**
 * Reads on from an earlier reading of the same MANIFEST (it is only ever appended to): `tail` is the file from
 * byte `earlier.end` on. `earlier` is left as it was.
 */
export function readVersionOn(earlier: ManifestReading, tail: Uint8Array): ManifestReading {
  const state: LevelState = { ...earlier.state, tables: new Map(earlier.state.tables), levels: new Map(earlier.state.levels) };
  const { records, end } = readRecordsFrom(tail, earlier.end);
  for (const record of records) applyEdit(state, record);
  return { state, end };
}

/** Applies one VersionEdit to the state. */
function applyEdit(state: LevelState, record: Uint8Array): void {
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
      case Tag.DeletedFile: {
        r.varint();
        const number = r.varint();
        state.tables.delete(number);
        state.levels.delete(number);
        break;
      }
      case Tag.NewFile: {
        const level = r.varint();
        const number = r.varint();
        const size = r.varint();
        r.skipSlice();
        r.skipSlice();
        state.tables.set(number, size);
        state.levels.set(number, level);
        break;
      }
      case Tag.PrevLogNumber:
        state.prevLogNumber = r.varint();
        break;
      default:
        throw damaged(`unknown field tag ${tag as number}`);
    }
  }
}

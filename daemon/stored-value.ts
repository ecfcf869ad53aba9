// How a key's value is stored: msgpack `[attrs, writer, ...earlier]`, the attribute map, the request id of the
// write that made it, and the ids of earlier writes of the key whose sessions may still send them again. A writer
// is `[session, seq]` when that write's result is the value itself (atomic_add) or `[session, seq, result]` (put,
// cond_put, put_if_not_exist answer null). The value is thus the completion record of the writes that made it: a
// write sent again finds itself there at no cost, and the common write adds no LevelDB operation of its own, even
// when a hot key is overwritten while its previous writer's answer is still on its way. Only a record that cannot
// stay with its key goes to the partition's record range (completion-records.ts): a deletion's, an earlier
// atomic_add's (its result is a value the key no longer holds), and any beyond `keyRecordsMax`. A bare attribute
// map, as stored before request ids, reads as a value with no writer.
// This layout is part of daemon data format 1 (shared/data-format.ts, stamped once per data dir rather than per
// value): changing it means a new format version there, and daemons of one cluster must share it, as replication
// and state transfer move these bytes between daemons as they are.
import { pack, unpack, valueEnd } from '../shared/codec.js';
import type { Attrs } from '../shared/protocol.js';

export interface Writer {
  session: Uint8Array;
  seq: number;
  /** The write's result; `resultIsValue`: it answered the value it left (atomic_add). */
  result: unknown;
  resultIsValue: boolean;
}

export interface Stored {
  attrs: Attrs;
  writer: Writer | undefined;
  /** Earlier writes of this key kept with it, newest first; none has `resultIsValue`. */
  earlier: Writer[];
}

type Tuple = [Uint8Array, number, unknown?];

/**
 * The msgpack bytes of a writer's tuple, written by hand: it is encoded on every write, and is nearly always an
 * 8-byte session, a sequence number below 2^32 and a null result. Anything else goes through the codec.
 */
function encodeTuple(writer: Writer): Buffer {
  const { session, seq } = writer;
  const literal = writer.resultIsValue ? -1 : writer.result === null ? 0xc0 : writer.result === true ? 0xc3 : writer.result === false ? 0xc2 : undefined;
  if (session.length !== 8 || !Number.isInteger(seq) || seq < 0 || seq > 0xffffffff || literal === undefined) {
    return pack(writer.resultIsValue ? [session, seq] : [session, seq, writer.result]);
  }
  const bytes = Buffer.allocUnsafe(17);
  bytes[0] = literal === -1 ? 0x92 : 0x93;
  bytes[1] = 0xc4; // bin 8
  bytes[2] = 8;
  bytes.set(session, 3);
  let end = 11;
  if (seq < 0x80) bytes[end++] = seq;
  else if (seq < 0x100) { bytes[end++] = 0xcc; bytes[end++] = seq; }
  else if (seq < 0x10000) { bytes[end++] = 0xcd; bytes.writeUInt16BE(seq, end); end += 2; }
  else { bytes[end++] = 0xce; bytes.writeUInt32BE(seq, end); end += 4; }
  if (literal !== -1) bytes[end++] = literal;
  return bytes.subarray(0, end);
}

/**
 * The stored bytes of `attrs` (already encoded, as the size limit is checked on them) written by `writer`, with
 * `earlier` writes kept (at most 13: the array header is one byte).
 */
export function encodeStored(attrs: Buffer, writer: Writer, earlier: readonly Writer[] = []): Buffer {
  const parts = [Buffer.of(0x92 + earlier.length), attrs, encodeTuple(writer)];
  for (const write of earlier) parts.push(encodeTuple(write));
  return Buffer.concat(parts);
}

export function decodeStored(bytes: Uint8Array): Stored {
  const decoded = unpack(bytes) as Attrs | [Attrs, ...Tuple[]];
  if (!Array.isArray(decoded)) return { attrs: decoded, writer: undefined, earlier: [] };
  const attrs = decoded[0];
  const writerOf = (tuple: Tuple): Writer => {
    const resultIsValue = tuple.length === 2;
    return { session: tuple[0], seq: tuple[1], result: resultIsValue ? attrs : tuple[2], resultIsValue };
  };
  const earlier: Writer[] = [];
  for (let i = 2; i < decoded.length; i++) earlier.push(writerOf(decoded[i] as Tuple));
  return { attrs, writer: writerOf(decoded[1] as Tuple), earlier };
}

/**
 * The bytes of the attribute map inside a stored value, as they are: what a read answers (codec.ts `Packed`),
 * without unpacking the value and its write records.
 */
export function storedAttrsBytes(bytes: Uint8Array): Uint8Array {
  const first = bytes[0]!;
  if (first < 0x90 || first > 0x9f) return bytes; // a bare attribute map, as stored before request ids
  return bytes.subarray(1, valueEnd(bytes, 1));
}

/** Whether `writer` is the write with this request id. */
export const isWrite = (writer: Writer | undefined, session: Buffer, seq: number): boolean =>
  writer !== undefined && writer.seq === seq && session.equals(writer.session);

/** Which of the writes recorded in `stored` has this request id, if one does. */
export function recordedWrite(stored: Stored | undefined, session: Buffer, seq: number): Writer | undefined {
  if (!stored) return undefined;
  if (isWrite(stored.writer, session, seq)) return stored.writer;
  return stored.earlier.find((writer) => isWrite(writer, session, seq));
}

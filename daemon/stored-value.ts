// How a key's value is stored: msgpack `[attrs, writer]`, the attribute map and the request id of the write that
// made it, `[session, seq]` when that write's result is the value itself (atomic_add) or `[session, seq, result]`
// (put, cond_put, put_if_not_exist answer null). The value is thus its last write's completion record: a write
// sent again finds itself there at no cost, and the common write adds no LevelDB operation of its own. Only a
// record that must outlive its value (the write was overwritten, or deleted the key, while its session may still
// send it again) goes to the partition's record range (completion-records.ts). A bare attribute map, as stored
// before request ids, reads as a value with no writer.
import { pack, unpack } from '../shared/codec.js';
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
}

const arrayOfTwo = Buffer.from([0x92]);

/** The stored bytes of `attrs` (already encoded, as the size limit is checked on them) written by `writer`. */
export function encodeStored(attrs: Buffer, writer: Writer): Buffer {
  const tuple = writer.resultIsValue ? [writer.session, writer.seq] : [writer.session, writer.seq, writer.result];
  return Buffer.concat([arrayOfTwo, attrs, pack(tuple)]);
}

export function decodeStored(bytes: Uint8Array): Stored {
  const decoded = unpack(bytes) as Attrs | [Attrs, [Uint8Array, number, unknown?]];
  if (!Array.isArray(decoded)) return { attrs: decoded, writer: undefined };
  const [attrs, tuple] = decoded;
  const resultIsValue = tuple.length === 2;
  return { attrs, writer: { session: tuple[0], seq: tuple[1], result: resultIsValue ? attrs : tuple[2], resultIsValue } };
}

/** Whether `writer` is the write with this request id. */
export const isWrite = (writer: Writer | undefined, session: Buffer, seq: number): boolean =>
  writer !== undefined && writer.seq === seq && session.equals(writer.session);

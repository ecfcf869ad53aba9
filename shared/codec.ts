// Turns WebSocket messages into validated frames and back. Nothing reaches a handler before it has passed the
// schema of its `t` in protocol.ts, so handlers can trust field types.
import { Packr, addExtension } from 'msgpackr';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { messageSchemas, type Message, type MessageType } from './protocol.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/**
 * Bytes that already are one msgpack value, written into a message as they are: a read answers the attributes
 * of a stored value this way, without unpacking them and packing them again (that took 8% of a daemon's CPU
 * under reads). The peer sees the value itself; nothing marks it on the wire.
 */
export class Packed {
  constructor(readonly bytes: Uint8Array) {}
}

// msgpackr writes an extension's bytes at the place `allocate` gives when `pack` returns nothing (no ext header).
// The type code is never written; one arriving in a message is refused like any other unknown extension.
const packedType = 0x4b;
addExtension({
  Class: Packed,
  type: packedType,
  pack: ((value: Packed, allocate: (size: number) => { target: Uint8Array; position: number }) => {
    const { target, position } = allocate(value.bytes.length);
    target.set(value.bytes, position);
  }) as unknown as (value: unknown) => Uint8Array,
  unpack: () => {
    throw new Error(`unknown extension type ${packedType}`);
  },
});

/**
 * Where the msgpack value that starts at `at` ends. Throws on bytes that are not msgpack (0xc1) or end early.
 * Lengths are checked against the buffer, so a damaged value cannot make it read outside it.
 */
export function valueEnd(bytes: Uint8Array, at: number): number {
  let pending = 1; // values still to skip: a map or an array adds its entries
  let p = at;
  const need = (n: number) => {
    if (p + n > bytes.length) throw new Error('a msgpack value runs past the end of its bytes');
  };
  const u16 = () => (need(2), (bytes[p]! << 8) | bytes[p + 1]!);
  const u32 = () => (need(4), ((bytes[p]! << 24) >>> 0) + ((bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!));
  while (pending > 0) {
    pending--;
    need(1);
    const b = bytes[p++]!;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue; // fixints, nil, booleans
    if (b <= 0x8f) { pending += 2 * (b & 0x0f); continue; } // fixmap
    if (b <= 0x9f) { pending += b & 0x0f; continue; } // fixarray
    if (b <= 0xbf) { p += b & 0x1f; continue; } // fixstr
    switch (b) {
      case 0xc4: case 0xd9: need(1); p += 1 + bytes[p]!; break; // bin 8, str 8
      case 0xc5: case 0xda: p += 2 + u16(); break; // bin 16, str 16
      case 0xc6: case 0xdb: p += 4 + u32(); break; // bin 32, str 32
      case 0xc7: need(1); p += 2 + bytes[p]!; break; // ext 8: length, type, data
      case 0xc8: p += 3 + u16(); break; // ext 16
      case 0xc9: p += 5 + u32(); break; // ext 32
      case 0xca: p += 4; break; // float 32
      case 0xcb: p += 8; break; // float 64
      case 0xcc: case 0xd0: p += 1; break; // uint 8, int 8
      case 0xcd: case 0xd1: p += 2; break;
      case 0xce: case 0xd2: p += 4; break;
      case 0xcf: case 0xd3: p += 8; break;
      case 0xd4: p += 2; break; // fixext 1: type, data
      case 0xd5: p += 3; break;
      case 0xd6: p += 5; break;
      case 0xd7: p += 9; break;
      case 0xd8: p += 17; break;
      case 0xdc: pending += u16(); p += 2; break; // array 16
      case 0xdd: pending += u32(); p += 4; break; // array 32
      case 0xde: pending += 2 * u16(); p += 2; break; // map 16
      case 0xdf: pending += 2 * u32(); p += 4; break; // map 32
      default: throw new Error(`byte 0x${b.toString(16)} at ${p - 1} starts no msgpack value`);
    }
  }
  if (p > bytes.length) throw new Error('a msgpack value runs past the end of its bytes');
  return p;
}

const checks = Object.fromEntries(
  Object.entries(messageSchemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
) as { [T in MessageType]: TypeCheck<(typeof messageSchemas)[T]> };

export type DecodedFrame = { ok: true; message: Message } | { ok: false; id: number | null; reason: string };

export const encodeBatch = (frames: readonly Message[]): Buffer => packr.pack(frames);

/** Values stored on disk use the same encoder as the wire. */
export const pack = (value: unknown): Buffer => packr.pack(value);
export const unpack = (bytes: Uint8Array): unknown => packr.unpack(bytes);

/**
 * Decodes one WebSocket message. Returns one entry per frame; a frame that fails validation becomes a reason
 * (with its id when one could be read, so the sender can be answered). Throws only when the message is not a
 * msgpack array at all.
 */
export function decodeBatch(data: Uint8Array): DecodedFrame[] {
  let frames: unknown;
  try {
    frames = packr.unpack(data);
  } catch (error) {
    throw new Error(`undecodable message: ${(error as Error).message}`);
  }
  if (!Array.isArray(frames)) throw new Error('a message must be a msgpack array of frames');
  return frames.map(decodeFrame);
}

export function decodeFrame(frame: unknown): DecodedFrame {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    return { ok: false, id: null, reason: 'a frame must be a map' };
  }
  const record = frame as Record<string, unknown>;
  const id = Number.isSafeInteger(record.id) && (record.id as number) >= 0 ? (record.id as number) : null;
  const type = record.t;
  if (typeof type !== 'string' || !Object.hasOwn(checks, type)) {
    return { ok: false, id, reason: `unknown message type ${JSON.stringify(type)}` };
  }
  const check = checks[type as MessageType];
  if (check.Check(frame)) return { ok: true, message: frame as Message };
  const first = check.Errors(frame).First();
  const where = first?.path ? ` at ${first.path}` : '';
  return { ok: false, id, reason: `malformed ${type} frame${where}: ${first?.message ?? 'invalid'}` };
}

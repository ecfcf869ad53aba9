// Turns WebSocket messages into validated frames and back. Nothing reaches a handler before it has passed the
// schema of its `t` in protocol.ts, so handlers can trust field types.
import { Packr } from 'msgpackr';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { messageSchemas, type Message, type MessageType } from './protocol.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

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

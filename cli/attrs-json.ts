// Attribute maps as JSON on the command line. Bytes, which JSON lacks, are written {"$bytes": "<base64>"}: an
// object with that one field, holding standard base64 (padding optional). Anything else is refused rather than
// guessed at, since Node's own decoder skips what it does not understand and would store other bytes.
import { badRequest } from '../shared/errors.js';
import type { Attrs, AttrValue } from '../shared/protocol.js';

const valueKinds = 'values are strings, numbers, booleans, null or {"$bytes": "<base64>"}';
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** A JSON object of attributes; `what` names it in errors ("the value", "the condition"). */
export function parseAttrs(text: string, what = 'the value'): Attrs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw badRequest(`${what} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest(`${what} must be a JSON object of attributes, e.g. {"name":"ada","age":36}`);
  }
  // fromEntries defines each name as its own property: an attribute named "__proto__" is stored, not swallowed.
  return Object.fromEntries(Object.entries(parsed).map(([name, value]) => [name, parseValue(name, value)]));
}

/** A JSON object of numbers to add, for atomic_add. */
export function parseDeltas(text: string): Record<string, number> {
  const deltas: Record<string, number> = {};
  for (const [name, value] of Object.entries(parseAttrs(text, 'the deltas'))) {
    if (typeof value !== 'number') throw badRequest(`attribute "${name}": atomic-add adds numbers, not ${JSON.stringify(value)}`);
    deltas[name] = value;
  }
  return deltas;
}

function parseValue(name: string, value: unknown): AttrValue {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return value as AttrValue;
  if (typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value as object, '$bytes')) {
    throw badRequest(`attribute "${name}": ${valueKinds}`);
  }
  const fields = Object.keys(value as object);
  if (fields.length !== 1) {
    const extra = fields.filter((f) => f !== '$bytes').map((f) => JSON.stringify(f)).join(', ');
    throw badRequest(`attribute "${name}": {"$bytes": ...} takes no other fields (got ${extra})`);
  }
  const text = (value as { $bytes: unknown }).$bytes;
  const bytes = typeof text === 'string' && base64.test(text) ? Buffer.from(text, 'base64') : undefined;
  // The last character may carry bits past the last byte; only the encoding with those bits zero is canonical.
  if (!bytes || bytes.toString('base64').replace(/=+$/, '') !== (text as string).replace(/=+$/, '')) {
    throw badRequest(`attribute "${name}": $bytes must be a base64 string (A-Z, a-z, 0-9, + and /, = padding), not ${JSON.stringify(text).slice(0, 40)}`);
  }
  return bytes;
}

export const attrsToJson = (attrs: Attrs): string =>
  JSON.stringify(attrs, (_key, value: unknown) =>
    value instanceof Uint8Array || (typeof value === 'object' && value !== null && (value as { type?: string }).type === 'Buffer')
      ? { $bytes: Buffer.from(value instanceof Uint8Array ? value : (value as { data: number[] }).data).toString('base64') }
      : value,
  );

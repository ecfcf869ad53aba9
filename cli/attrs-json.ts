// Attribute maps as JSON on the command line. Bytes, which JSON lacks, are written {"$bytes": "<base64>"}.
import { badRequest } from '../shared/errors.js';
import type { Attrs, AttrValue } from '../shared/protocol.js';

export function parseAttrs(text: string): Attrs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw badRequest(`the value is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest('the value must be a JSON object of attributes, e.g. {"name":"ada","age":36}');
  }
  const attrs: Attrs = {};
  for (const [name, value] of Object.entries(parsed)) attrs[name] = parseValue(name, value);
  return attrs;
}

function parseValue(name: string, value: unknown): AttrValue {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return value as AttrValue;
  if (typeof value === 'object' && typeof (value as { $bytes?: unknown }).$bytes === 'string') {
    return Buffer.from((value as { $bytes: string }).$bytes, 'base64');
  }
  throw badRequest(`attribute "${name}": values are strings, numbers, booleans, null or {"$bytes": "<base64>"}`);
}

export const attrsToJson = (attrs: Attrs): string =>
  JSON.stringify(attrs, (_key, value: unknown) =>
    value instanceof Uint8Array || (typeof value === 'object' && value !== null && (value as { type?: string }).type === 'Buffer')
      ? { $bytes: Buffer.from(value instanceof Uint8Array ? value : (value as { data: number[] }).data).toString('base64') }
      : value,
  );

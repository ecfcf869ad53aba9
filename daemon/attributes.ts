// What each write does to a stored value. Pure functions: given the current attributes (or undefined when the
// key is absent) they return the new attributes, or throw a KvError. The write queue applies them in order.
import { KvError, badRequest } from '../shared/errors.js';
import { attributeNameBytesMax, attributesMax } from '../shared/limits.js';
import type { Attrs, AttrValue } from '../shared/protocol.js';

export function checkAttrs(attrs: Attrs): void {
  const names = Object.keys(attrs);
  if (names.length > attributesMax) throw badRequest(`a value has at most ${attributesMax} attributes`);
  for (const name of names) {
    if (name.length === 0 || Buffer.byteLength(name) > attributeNameBytesMax) {
      throw badRequest(`attribute names are 1 to ${attributeNameBytesMax} bytes`);
    }
  }
}

/** A stored value may not grow past attributesMax, however many writes added to it. */
function bounded(value: Attrs): Attrs {
  if (Object.keys(value).length > attributesMax) throw badRequest(`a value has at most ${attributesMax} attributes`);
  return value;
}

/** put: sets the given attributes, keeping the others (HyperDex semantics). */
export const merge = (current: Attrs | undefined, attrs: Attrs): Attrs => bounded({ ...current, ...attrs });

const sameValue = (a: AttrValue | undefined, b: AttrValue): boolean => {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  return a === b;
};

/** cond_put: sets attrs only if every attribute in `expect` currently has that value. */
export function condPut(current: Attrs | undefined, expect: Attrs, attrs: Attrs): Attrs {
  if (current === undefined) throw new KvError('CONDITION_FAILED', 'the key does not exist');
  for (const [name, value] of Object.entries(expect)) {
    if (!sameValue(current[name], value)) {
      throw new KvError('CONDITION_FAILED', `attribute "${name}" does not have the expected value`);
    }
  }
  return merge(current, attrs);
}

export function putIfNotExist(current: Attrs | undefined, attrs: Attrs): Attrs {
  if (current !== undefined) throw new KvError('CONDITION_FAILED', 'the key already exists');
  return bounded({ ...attrs });
}

/** atomic_add: adds to numeric attributes; an absent key or attribute counts as 0. */
export function atomicAdd(current: Attrs | undefined, deltas: Record<string, number>): Attrs {
  const next: Attrs = { ...current };
  for (const [name, delta] of Object.entries(deltas)) {
    if (!Number.isFinite(delta)) throw badRequest(`the amount added to "${name}" must be a finite number`);
    const value = Object.hasOwn(next, name) ? next[name]! : 0;
    if (typeof value !== 'number') throw badRequest(`attribute "${name}" holds a ${typeOf(value)}, not a number`);
    next[name] = value + delta;
  }
  return bounded(next);
}

const typeOf = (value: AttrValue) => (value === null ? 'null' : value instanceof Uint8Array ? 'bytes' : typeof value);

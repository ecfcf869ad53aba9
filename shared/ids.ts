import { randomBytes } from 'node:crypto';

/** A random 64-bit id, written in decimal (server ids and cluster ids). */
export const newId64 = (): string => randomBytes(8).readBigUInt64BE().toString();

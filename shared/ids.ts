import { randomBytes } from 'node:crypto';

/** A random 64-bit id, written in decimal (server ids and cluster ids). */
export const newId64 = (): string => randomBytes(8).readBigUInt64BE().toString();

/** A client session id: 64 random bits as 16 hex digits (the form a write's request id carries). */
export const newSessionId = (): string => randomBytes(8).toString('hex');

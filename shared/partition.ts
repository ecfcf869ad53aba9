// Which partition a key belongs to. Clients route with it and daemons check ownership with it, so both must
// compute exactly the same function: the first 32 bits of the key's MD5 (node:crypto; chosen for spread and
// portability, not security), modulo the space's partition count.
import { createHash } from 'node:crypto';

export const hashKey = (key: string): number => createHash('md5').update(key, 'utf8').digest().readUInt32BE(0);

export const partitionOf = (key: string, partitionCount: number): number => hashKey(key) % partitionCount;

// Which partition a key belongs to. Clients route with it and daemons check ownership with it, so both must
// compute exactly the same function: the first 32 bits of the key's MD5 (node:crypto; chosen for spread and
// portability, not security), modulo the space's partition count.
import { hash } from 'node:crypto';

// crypto.hash is the one-shot form: half the cost of createHash, which builds a native Hash object per key.
export const hashKey = (key: string): number => hash('md5', key, 'buffer').readUInt32BE(0);

export const partitionOf = (key: string, partitionCount: number): number => hashKey(key) % partitionCount;

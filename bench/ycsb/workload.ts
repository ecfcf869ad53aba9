// YCSB's core workloads and key choosers (Cooper et al., "Benchmarking Cloud Serving Systems with YCSB", 2010):
//
//   load  every key inserted once, in order     A  50% read, 50% update (a session store)
//   B     95% read, 5% update (photo tagging)    C  100% read (a user-profile cache)
//
// Keys are "user" + a zero-padded number, all made up front; a chooser returns an index into them, so that
// choosing a key allocates nothing. The zipfian chooser is YCSB's ScrambledZipfianGenerator: Gray et al.'s
// zipfian generator ("Quickly generating billion-record synthetic databases", SIGMOD 1994) with constant 0.99
// over the item count, its rank then hashed with FNV-1a 64 so that the popular keys are spread over the key
// space instead of being the first ones (precomputed per rank, so no BigInt per operation).
//
// Values are random bytes, a different slice of one random buffer for each key: incompressible (LevelDB, under
// kv and the in-process store, compresses its blocks with snappy, so a constant value would take almost nothing
// on disk) and made without allocating anything per operation beyond the slice's view.
import { randomBytes } from 'node:crypto';

export type WorkloadName = 'load' | 'a' | 'b' | 'c';
export const workloadNames: readonly WorkloadName[] = ['load', 'a', 'b', 'c'];

export interface Workload {
  name: WorkloadName;
  /** "A", "B", ...: how tables and charts name it. */
  label: string;
  description: string;
  /** Share of reads among the operations; the rest are updates (a put of the whole value). */
  readProportion: number;
}

export const workloads: Record<WorkloadName, Workload> = {
  load: { name: 'load', label: 'load', description: 'every key inserted once', readProportion: 0 },
  a: { name: 'a', label: 'A', description: '50% read, 50% update', readProportion: 0.5 },
  b: { name: 'b', label: 'B', description: '95% read, 5% update', readProportion: 0.95 },
  c: { name: 'c', label: 'C', description: '100% read', readProportion: 1 },
};

export type Distribution = 'zipfian' | 'uniform';

/** The zipfian constant of YCSB's core workloads. */
export const zipfianConstant = 0.99;

/** "user0000012345": every key of the same length, made once. */
export function makeKeys(count: number): string[] {
  const width = Math.max(10, String(count - 1).length);
  return Array.from({ length: count }, (_, i) => `user${String(i).padStart(width, '0')}`);
}

/** The value of each key: valueBytes random bytes at offset (index × 7919) mod (pool size − valueBytes + 1) of one random pool. */
export class Values {
  private readonly pool: Buffer;
  private readonly offsets: number;

  constructor(readonly valueBytes: number) {
    const size = Math.max(16 * 2 ** 20, 4 * valueBytes);
    this.pool = randomBytes(size);
    this.offsets = size - valueBytes + 1;
  }

  /** The value for the key at `index` (a view into the pool: not to be written to). */
  of(index: number): Buffer {
    const at = (index * 7919) % this.offsets;
    return this.pool.subarray(at, at + this.valueBytes);
  }
}

/** Picks key indexes in [0, items). */
export interface KeyChooser {
  next(): number;
}

export class UniformChooser implements KeyChooser {
  constructor(
    private readonly items: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    return Math.floor(this.random() * this.items);
  }
}

/** zeta(n, theta) = sum over i in 1..n of 1 / i^theta. */
export function zeta(n: number, theta: number): number {
  let sum = 0;
  for (let i = 1; i <= n; i++) sum += 1 / Math.pow(i, theta);
  return sum;
}

/** Ranks in [0, items), rank 0 the most popular, P(rank r) proportional to 1 / (r + 1)^theta (YCSB's ZipfianGenerator). */
export class ZipfianGenerator implements KeyChooser {
  private readonly alpha: number;
  private readonly zetan: number;
  private readonly eta: number;
  private readonly half: number;

  constructor(
    private readonly items: number,
    private readonly theta = zipfianConstant,
    private readonly random: () => number = Math.random,
  ) {
    if (!(items >= 1)) throw new Error('a zipfian generator needs at least one item');
    this.zetan = zeta(items, theta);
    const zeta2 = zeta(2, theta);
    this.alpha = 1 / (1 - theta);
    this.eta = (1 - Math.pow(2 / items, 1 - theta)) / (1 - zeta2 / this.zetan);
    this.half = 1 + Math.pow(0.5, theta);
  }

  next(): number {
    const u = this.random();
    const uz = u * this.zetan;
    if (uz < 1) return 0;
    if (uz < this.half) return this.items > 1 ? 1 : 0;
    const rank = Math.floor(this.items * Math.pow(this.eta * u - this.eta + 1, this.alpha));
    return rank < this.items ? rank : this.items - 1;
  }
}

const fnvOffset = 0xcbf29ce484222325n;
const fnvPrime = 0x100000001b3n;
const mask64 = (1n << 64n) - 1n;

/** YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes of a long, low byte first; the absolute value of the signed result. */
export function fnvHash64(value: number): bigint {
  let hash = fnvOffset;
  let v = BigInt(value);
  for (let i = 0; i < 8; i++) {
    hash ^= v & 0xffn;
    v >>= 8n;
    hash = (hash * fnvPrime) & mask64;
  }
  const signed = BigInt.asIntN(64, hash);
  return signed < 0n ? -signed : signed;
}

/** Zipfian ranks, each mapped to key fnvhash64(rank) mod items (a table made once: no BigInt per operation). */
export class ScrambledZipfianChooser implements KeyChooser {
  private readonly zipfian: ZipfianGenerator;
  private readonly keyOfRank: Uint32Array;

  constructor(items: number, theta = zipfianConstant, random: () => number = Math.random) {
    this.zipfian = new ZipfianGenerator(items, theta, random);
    this.keyOfRank = new Uint32Array(items);
    const n = BigInt(items);
    for (let rank = 0; rank < items; rank++) this.keyOfRank[rank] = Number(fnvHash64(rank) % n);
  }

  next(): number {
    return this.keyOfRank[this.zipfian.next()]!;
  }
}

export function chooser(distribution: Distribution, items: number): KeyChooser {
  return distribution === 'zipfian' ? new ScrambledZipfianChooser(items) : new UniformChooser(items);
}

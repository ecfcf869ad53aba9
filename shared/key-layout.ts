// The one module that knows how a daemon lays out its LevelDB keys. Used by the daemon and by offline tools
// (verify-backup, tests reading a stopped daemon's replicas).
//
//   0x00 <name>                                             daemon metadata (its identity)
//   0x01 <space id u32> <partition u16> <key utf8>          a stored value: msgpack of its attribute map
//   0x02 <space id u32> <partition u16> <session 8> <seq u48>  a completion record: msgpack [atMs, result]
//
// A partition is two contiguous ranges, its values and its completion records: both move with it (state
// transfer), are dropped with it, and are captured with it by a snapshot. Counts and scans see values only.

export const identityKey = Buffer.from('\x00identity', 'latin1');
export const dataTag = 0x01;
export const recordTag = 0x02;
/** Every stored value's key lies in [dataKeysFrom, dataKeysTo). */
export const dataKeysFrom = Buffer.from([dataTag]);
export const dataKeysTo = Buffer.from([dataTag + 1]);

/** Bytes before a value's own key, or before a record's session: tag, space id, partition. */
export const partitionPrefixBytes = 7;
export const sessionBytes = 8;
const seqBytes = 6;

export const dataKey = (spaceId: number, partition: number, key: string): Buffer => {
  const bytes = Buffer.allocUnsafe(partitionPrefixBytes + Buffer.byteLength(key));
  bytes[0] = dataTag;
  bytes.writeUInt32BE(spaceId, 1);
  bytes.writeUInt16BE(partition, 5);
  bytes.write(key, partitionPrefixBytes, 'utf8');
  return bytes;
};

/** The user's key of a stored value's LevelDB key. */
export const userKeyOf = (key: Buffer): string => key.toString('utf8', partitionPrefixBytes);

export const recordKey = (spaceId: number, partition: number, session: Buffer, seq: number): Buffer => {
  const bytes = Buffer.allocUnsafe(partitionPrefixBytes + sessionBytes + seqBytes);
  bytes[0] = recordTag;
  bytes.writeUInt32BE(spaceId, 1);
  bytes.writeUInt16BE(partition, 5);
  session.copy(bytes, partitionPrefixBytes);
  bytes.writeUIntBE(seq, partitionPrefixBytes + sessionBytes, seqBytes);
  return bytes;
};

/** A completion record's session (as the client's hex id) and sequence number; undefined if `key` is none. */
export function parseRecordKey(key: Buffer): { session: string; seq: number } | undefined {
  if (key.length !== partitionPrefixBytes + sessionBytes + seqBytes || key[0] !== recordTag) return undefined;
  return {
    session: key.toString('hex', partitionPrefixBytes, partitionPrefixBytes + sessionBytes),
    seq: key.readUIntBE(partitionPrefixBytes + sessionBytes, seqBytes),
  };
}

/** The largest sequence number a record key holds. */
export const seqMax = 2 ** (8 * seqBytes) - 1;

const prefix = (tag: number, spaceId: number, partition?: number): Buffer => {
  const bytes = Buffer.alloc(partition === undefined ? 5 : partitionPrefixBytes);
  bytes[0] = tag;
  bytes.writeUInt32BE(spaceId, 1);
  if (partition !== undefined) bytes.writeUInt16BE(partition, 5);
  return bytes;
};

export interface KeyRange {
  gte: Buffer;
  lt: Buffer;
}

// partitionsMax keeps partition + 1 within the u16.
const rangeOf = (tag: number, spaceId: number, partition?: number): KeyRange => ({
  gte: prefix(tag, spaceId, partition),
  lt: partition === undefined ? prefix(tag, spaceId + 1) : prefix(tag, spaceId, partition + 1),
});

/** The stored values of one partition (or of a whole space). */
export const dataRange = (spaceId: number, partition?: number): KeyRange => rangeOf(dataTag, spaceId, partition);
/** The completion records of one partition (or of a whole space). */
export const recordRange = (spaceId: number, partition?: number): KeyRange => rangeOf(recordTag, spaceId, partition);
/** Everything a partition (or a space) holds, in key order: its values, then its completion records. */
export const partitionRanges = (spaceId: number, partition?: number): KeyRange[] => [
  dataRange(spaceId, partition),
  recordRange(spaceId, partition),
];

/** Whether a raw key (a replicated change, a transfer page's entry) belongs to this partition. */
export function inPartition(key: Uint8Array, spaceId: number, partition: number): boolean {
  if (key.length < partitionPrefixBytes || (key[0] !== dataTag && key[0] !== recordTag)) return false;
  const view = Buffer.from(key.buffer, key.byteOffset, key.length);
  if (view.readUInt32BE(1) !== spaceId || view.readUInt16BE(5) !== partition) return false;
  return key[0] === dataTag || key.length === partitionPrefixBytes + sessionBytes + seqBytes;
}

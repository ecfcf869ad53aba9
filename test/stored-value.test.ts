// The stored value's layout: the hand-written writer tuples must read back, through the codec, as what was written.
import t from 'tap';
import { pack, unpack } from '../shared/codec.js';
import { decodeStored, encodeStored, recordedWrite, storedAttrsBytes, type Writer } from '../daemon/stored-value.js';

const session = Buffer.from('0123456789abcdef', 'hex');
const writer = (seq: number, result: unknown, resultIsValue = false): Writer => ({ session, seq, result, resultIsValue });

t.test('every writer tuple reads back as written, in the codec\'s own encoding', async (t) => {
  const attrs = { v: 'x', n: 3 };
  const seqs = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 0xffffffff, 0x100000000, 2 ** 48 - 1];
  const results: unknown[] = [null, true, false, 7, { n: 1 }, 'text'];
  for (const seq of seqs) {
    for (const result of results) {
      const bytes = encodeStored(pack(attrs), writer(seq, result), [writer(seq + 1, null), writer(seq + 2, result)]);
      const expected = [attrs, [session, seq, result], [session, seq + 1, null], [session, seq + 2, result]];
      t.same(unpack(bytes), expected, `seq ${seq}, result ${JSON.stringify(result)}`);
      t.ok(bytes.equals(pack(expected)), `seq ${seq}, result ${JSON.stringify(result)}: the same bytes as the codec writes`);
    }
    const added = decodeStored(encodeStored(pack(attrs), writer(seq, attrs, true)));
    t.same(added.writer, { session, seq, result: attrs, resultIsValue: true }, `seq ${seq}: an atomic_add's result is the value`);
  }
});

t.test('a resent write is found as the value\'s writer or among the earlier ones; a bare map has none', async (t) => {
  const stored = decodeStored(encodeStored(pack({ v: 1 }), writer(9, null), [writer(8, null), writer(5, true)]));
  t.equal(recordedWrite(stored, session, 9)?.seq, 9);
  t.equal(recordedWrite(stored, session, 5)?.result, true);
  t.equal(recordedWrite(stored, session, 7), undefined);
  t.equal(recordedWrite(stored, Buffer.from('ffffffffffffffff', 'hex'), 9), undefined, 'another session\'s 9 is another write');
  const bare = decodeStored(pack({ v: 1 }));
  t.same(bare, { attrs: { v: 1 }, writer: undefined, earlier: [] });
});

t.test("a stored value's attribute bytes are its map as packed, with or without write records", async (t) => {
  for (const attrs of [{}, { v: 'x'.repeat(300) }, { a: 1, b: Buffer.alloc(70_000, 1), c: null, d: -2.5, e: true }]) {
    const packed = pack(attrs);
    for (const earlier of [[], [writer(8, null)], Array.from({ length: 13 }, (_, i) => writer(i, i % 2 === 0))]) {
      const bytes = storedAttrsBytes(encodeStored(packed, writer(9, null), earlier));
      t.ok(Buffer.from(bytes).equals(packed), `${Object.keys(attrs).length} attributes, ${earlier.length} earlier writes`);
    }
    t.ok(Buffer.from(storedAttrsBytes(encodeStored(packed, writer(3, attrs, true)))).equals(packed), "an atomic_add's value");
    t.equal(storedAttrsBytes(packed), packed, 'a bare map is its own bytes');
  }
});

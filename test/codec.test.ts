// shared/codec.ts: WebSocket messages to validated frames and back.
import t from 'tap';
import { Packed, decodeBatch, decodeFrame, encodeBatch, pack, unpack, valueEnd } from '../shared/codec.js';
import { newCluster } from '../coordinator/cluster.js';
import type { Message } from '../shared/protocol.js';

const get = { t: 'get', id: 5, v: 3, space: 'users', key: 'k' } as const;

/** Decodes a batch holding the one given frame (packed as is, unvalidated). */
const one = (frame: unknown) => {
  const frames = decodeBatch(pack([frame]));
  if (frames.length !== 1) throw new Error(`expected one frame, got ${frames.length}`);
  return frames[0]!;
};

t.test('decodeBatch of a valid batch', async (t) => {
  const frames: Message[] = [
    get,
    { t: 'put', id: 6, v: 3, space: 'users', key: 'k', session: '0123456789abcdef', seq: 2, awaiting: 1, attrs: { a: 1, b: 'x', c: true, d: null } },
    { t: 'scan', id: 7, v: 3, space: 'users', partition: 2, after: null, limit: 100 },
    { t: 'config_ack', version: 9 },
    { t: 'config', config: newCluster('12') },
    { t: 'error', id: null, code: 'BAD_REQUEST', message: 'no' },
    { t: 'reply', id: 8, result: { anything: [1, 2] } },
  ];
  const decoded = decodeBatch(encodeBatch(frames));
  t.same(decoded, frames.map((message) => ({ ok: true, message })));
  t.same(decodeBatch(encodeBatch([])), [], 'an empty batch');
});

t.test('a message that is not a msgpack array throws', async (t) => {
  t.throws(() => decodeBatch(Buffer.alloc(0)), { message: /undecodable/ }, 'empty');
  t.throws(() => decodeBatch(Buffer.from([0x92, 0x01])), { message: /undecodable/ }, 'truncated');
  t.throws(() => decodeBatch(Buffer.from('hello world')), /./, 'text');
  t.throws(() => decodeBatch(Buffer.from([0xc1])), /./, 'the never-used byte 0xc1');
  t.throws(() => decodeBatch(pack(get)), { message: /array/ }, 'a single frame, not a batch');
  t.throws(() => decodeBatch(pack('string')), { message: /array/ });
  t.throws(() => decodeBatch(pack(null)), { message: /array/ });
});

t.test('frames that fail validation give {ok:false}, the id when readable, and a reason', async (t) => {
  t.same(one({ t: 'nope', id: 3 }), { ok: false, id: 3, reason: 'unknown message type "nope"' });
  t.match(one({ id: 4, v: 1 }), { ok: false, id: 4, reason: /unknown message type/ }, 'no t at all');
  t.match(one({ t: 42, id: 4 }), { ok: false, id: 4, reason: /unknown message type 42/ });
  t.match(one({ t: 'toString', id: 4 }), { ok: false, id: 4, reason: /unknown message type/ },
    'an Object.prototype name is not a type');

  const { key: _key, ...missingKey } = get;
  t.match(one(missingKey), { ok: false, id: 5, reason: /get.*\/key/ }, 'a missing field is named');

  t.match(one({ ...get, v: 'three' }), { ok: false, id: 5, reason: /get.*\/v/ }, 'a wrong field type is named');
  t.match(one({ ...get, v: 1.5 }), { ok: false, id: 5, reason: /\/v/ }, 'a version must be an integer');
  t.match(one({ ...get, v: -1 }), { ok: false, id: 5, reason: /\/v/ }, 'and not negative');
  t.match(one({ ...get, space: '' }), { ok: false, id: 5, reason: /\/space/ }, 'space names are not empty');
  t.match(one({ t: 'put', id: 6, v: 3, space: 'users', key: 'k', session: '0123456789abcdef', seq: 1, awaiting: 1, attrs: { a: [1] } }), {
    ok: false,
    id: 6,
    reason: /put.*\/attrs/,
  }, 'an array is not an attribute value');
  t.match(one({ t: 'atomic_add', id: 6, v: 3, space: 'users', key: 'k', session: '0123456789abcdef', seq: 1, awaiting: 1, deltas: { a: 'one' } }), {
    ok: false,
    id: 6,
    reason: /atomic_add.*\/deltas/,
  });

  t.match(one({ t: 'put', id: 7, v: 3, space: 'users', key: 'k', attrs: { a: 1 } }), { ok: false, id: 7, reason: /put/ },
    'a write without its request id is malformed');
  t.match(one({ ...get, extra: true }), { ok: false, id: 5, reason: /get.*\/extra/ }, 'an extra field is named');
  t.match(one({ t: 'config_ack', version: 1, id: 2 }), { ok: false, id: 2, reason: /config_ack.*\/id/ },
    'pushes carry no id');

  // The id, when it is not a usable id, is reported as null.
  t.match(one({ ...get, id: -1 }), { ok: false, id: null });
  t.match(one({ ...get, id: 'five' }), { ok: false, id: null });
  t.match(one({ ...get, id: 2.5 }), { ok: false, id: null });
  t.match(one({ t: 'nope' }), { ok: false, id: null });

  for (const frame of [5, 'get', null, [get], true]) {
    t.same(one(frame), { ok: false, id: null, reason: 'a frame must be a map' }, `frame ${JSON.stringify(frame)}`);
  }
});

t.test('one bad frame does not spoil the batch', async (t) => {
  const decoded = decodeBatch(pack([get, { t: 'nope', id: 1 }, { ...get, id: 6 }]));
  t.equal(decoded.length, 3);
  t.same(decoded[0], { ok: true, message: get });
  t.match(decoded[1], { ok: false, id: 1 });
  t.same(decoded[2], { ok: true, message: { ...get, id: 6 } });
});

t.test('bytes in attrs survive encode/decode', async (t) => {
  const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
  const frame: Message = {
    t: 'cond_put',
    id: 9,
    v: 1,
    space: 's',
    key: 'k',
    session: '0123456789abcdef',
    seq: 1,
    awaiting: 1,
    expect: { bin: new Uint8Array([7]) },
    attrs: { bin, empty: Buffer.alloc(0), text: 'ü' },
  };
  const [decoded] = decodeBatch(encodeBatch([frame]));
  t.ok(decoded?.ok, 'validates');
  if (!decoded?.ok || decoded.message.t !== 'cond_put') throw new Error('unexpected frame');
  const value = decoded.message.attrs.bin;
  t.ok(value instanceof Uint8Array, 'comes back as bytes');
  t.equal(Buffer.compare(Buffer.from(value as Uint8Array), bin), 0, 'same bytes');
  t.equal((decoded.message.attrs.empty as Uint8Array).length, 0, 'empty bytes stay bytes');
  t.equal(decoded.message.attrs.text, 'ü');
  t.same(Buffer.from(decoded.message.expect.bin as Uint8Array), Buffer.from([7]), 'a Uint8Array comes back too');

  // pack/unpack, used for stored values, agree with the wire encoding.
  const stored = unpack(pack({ bin })) as { bin: Uint8Array };
  t.equal(Buffer.compare(Buffer.from(stored.bin), bin), 0);
});

t.test('decodeFrame on its own', async (t) => {
  t.same(decodeFrame(get), { ok: true, message: get });
  t.same(decodeFrame(undefined), { ok: false, id: null, reason: 'a frame must be a map' });
});

t.test('valueEnd finds the end of every kind of msgpack value, and refuses bytes that are not one', async (t) => {
  const values: unknown[] = [
    0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32_768, -32_769, -(2 ** 31), -(2 ** 31) - 1,
    1.5, 0.1, Number.MAX_VALUE, null, true, false, '', 'x', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(70_000),
    Buffer.alloc(0), Buffer.alloc(255, 1), Buffer.alloc(256, 2), Buffer.alloc(70_000, 3),
    [], [1, [2, [3, {}]]], Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 70_000 }, (_, i) => i & 7),
    {}, { a: 1, b: { c: [1, 'd', null] } }, Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
    new Date(0), new Date(1_700_000_000_123),
    { bytes: Buffer.from('0123456789abcdef', 'hex'), s: 'é'.repeat(200), n: -7.25 },
  ];
  for (const value of values) {
    const bytes = pack(value);
    const framed = Buffer.concat([Buffer.of(0xc0), bytes, Buffer.of(0xc3)]);
    const what = typeof value === 'string' ? `a string of ${value.length}` : Buffer.isBuffer(value) ? `${value.length} bytes` : Array.isArray(value) ? `an array of ${value.length}` : JSON.stringify(value)?.slice(0, 40);
    t.equal(valueEnd(framed, 1), 1 + bytes.length, `${what} (first byte 0x${bytes[0]!.toString(16)})`);
  }
  for (const ext of [Buffer.of(0xd4, 1, 0), Buffer.of(0xd5, 1, 0, 0), Buffer.of(0xd6, 1, 0, 0, 0, 0), Buffer.of(0xd8, 1, ...Buffer.alloc(16)), Buffer.of(0xc7, 3, 1, 0, 0, 0), Buffer.of(0xc8, 0, 3, 1, 0, 0, 0), Buffer.of(0xc9, 0, 0, 0, 3, 1, 0, 0, 0)]) {
    t.equal(valueEnd(ext, 0), ext.length, `ext 0x${ext[0]!.toString(16)}`);
  }
  // map 32 (msgpackr writes map 16 up to 65,535 keys and refuses more): written by hand
  const map32 = Buffer.concat([Buffer.of(0xdf, 0, 0, 0, 2), pack('a'), pack(1), pack('b'), pack([1, 2])]);
  t.equal(valueEnd(map32, 0), map32.length, 'map 32');
  t.throws(() => valueEnd(Buffer.of(0xc1), 0), /starts no msgpack value/, '0xc1 is never used');
  const whole = pack({ a: 'x'.repeat(40), b: [1, 2, 3] });
  for (let cut = 0; cut < whole.length; cut++) {
    t.throws(() => valueEnd(whole.subarray(0, cut), 0), /past the end/, `cut at ${cut} of ${whole.length}`);
  }
  t.throws(() => valueEnd(Buffer.of(0xdd, 0xff, 0xff, 0xff, 0xff), 0), /past the end/, 'an array claiming 4 billion entries');
});

t.test('a Packed value goes into a message as its bytes, and reads back as the value', async (t) => {
  const attrs = { field0: 'v'.repeat(100), n: 3, b: Buffer.from('00ff', 'hex') };
  const frames = [{ t: 'reply', id: 1, result: new Packed(pack(attrs)) }, { t: 'reply', id: 2, result: null }, { t: 'reply', id: 3, result: new Packed(pack({})) }];
  const bytes = encodeBatch(frames as unknown as Message[]);
  t.ok(bytes.equals(pack([{ t: 'reply', id: 1, result: attrs }, { t: 'reply', id: 2, result: null }, { t: 'reply', id: 3, result: {} }])), 'the same bytes as the value packed in place');
  const decoded = decodeBatch(bytes);
  t.same(decoded.map((f) => f.ok && f.message), [{ t: 'reply', id: 1, result: attrs }, { t: 'reply', id: 2, result: null }, { t: 'reply', id: 3, result: {} }]);
  t.throws(() => decodeBatch(Buffer.concat([Buffer.of(0x91), Buffer.of(0xd4, 0x4b, 0)])), /undecodable message/, "its extension type is refused if a peer sends it");
});

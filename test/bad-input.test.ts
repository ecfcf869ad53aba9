// Bad input at the protocol level: raw bytes on a WebSocket to a daemon and to the coordinator. Every bad frame
// is answered with an error frame, the connection keeps serving, the process stays up, and nothing stored is lost.
import t from 'tap';
import WebSocket from 'ws';
import { pack, Packr, Unpackr } from 'msgpackr';
import { startCluster, waitFor, type Cluster, type TestLike } from './helpers/cluster.js';
import { attributeNameBytesMax, attributesMax, frameBytesMax, keyBytesMax } from '../shared/limits.js';

/** A write's request id, as the client library sets it (one session; each write its own sequence number). */
const rid = (seq: number) => ({ session: 'fedcba9876543210', seq, awaiting: seq });

/** The test object tap passes to a subtest. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const unpackr = new Unpackr({ mapsAsObjects: true, useRecords: false });

type Frame = Record<string, unknown> & { t: string };

/** A WebSocket speaking kv's wire format by hand, so the test controls every byte. */
class RawSocket {
  readonly frames: Frame[] = [];
  readonly undecodable: Buffer[] = [];
  closed: { code: number; reason: string } | undefined;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      try {
        const batch = unpackr.unpack(data) as unknown;
        if (Array.isArray(batch)) this.frames.push(...(batch as Frame[]));
        else this.undecodable.push(data);
      } catch {
        this.undecodable.push(data);
      }
    });
    socket.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    socket.on('error', () => {}); // always followed by 'close'
  }

  static async open(t: TestLike, address: string): Promise<RawSocket> {
    const socket = new WebSocket(`ws://${address}`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const raw = new RawSocket(socket);
    t.teardown(() => socket.terminate());
    return raw;
  }

  send(bytes: Uint8Array): void {
    this.socket.send(bytes);
  }

  sendFrames(frames: unknown[]): void {
    this.send(pack(frames));
  }

  /** Waits for (and takes) the first received frame matching `match`. */
  async take(what: string, match: (frame: Frame) => boolean): Promise<Frame> {
    return waitFor(`${what} (received so far: ${JSON.stringify(this.frames).slice(0, 500)})`, () => {
      const index = this.frames.findIndex(match);
      if (index < 0) {
        if (this.closed) throw new Error(`socket closed with ${this.closed.code} ${this.closed.reason}`);
        return undefined;
      }
      return this.frames.splice(index, 1)[0];
    }, 5_000);
  }

  /** The answer (reply or error) to request `id`. */
  answer(id: number): Promise<Frame> {
    return this.take(`an answer to request ${id}`, (f) => (f.t === 'reply' || f.t === 'error') && f.id === id);
  }

  /** The next error frame that names no request. */
  anonymousError(): Promise<Frame> {
    return this.take('an error frame with id null', (f) => f.t === 'error' && f.id === null);
  }

  waitClosed(): Promise<{ code: number; reason: string }> {
    return waitFor('the socket to close', () => this.closed, 15_000);
  }
}

/** A cluster of one daemon (so it serves every partition) with one space holding one key. */
async function smallCluster(t: TapTest, coordinatorArgs: string[] = []) {
  const cluster = await startCluster(t, { daemons: 1, coordinatorArgs });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  // Goes through the client's retries, so the daemon surely runs the config with the space afterwards.
  await client.put('s', 'keep', { name: 'kept', n: 1 });
  return { cluster, client, daemon: cluster.daemons[0]!, v: client.currentConfig.version };
}

async function assertStillServes(t: TapTest, cluster: Cluster) {
  const client = await cluster.client({ timeoutMs: 5_000 });
  t.same(await client.get('s', 'keep'), { name: 'kept', n: 1 }, 'a fresh client still reads the stored key');
  await client.put('s', 'after', { ok: true });
  t.same(await client.get('s', 'after'), { ok: true }, 'and still writes');
  t.equal(cluster.coordinator.proc.exitCode, undefined, 'the coordinator is still running');
  for (const daemon of cluster.daemons) t.equal(daemon.proc.exitCode, undefined, 'the daemon is still running');
}

/** Sends each bad message in turn on one socket; each must get a BAD_REQUEST error frame with the right id. */
async function sendBadMessages(t: TapTest, raw: RawSocket, v: number) {
  const get = (id: number, key: unknown = 'keep') => ({ t: 'get', id, v, space: 's', key });
  const truncated = pack([get(90)]);
  const cases: Array<{ name: string; bytes: Uint8Array; id: number | null }> = [
    { name: 'garbage bytes', bytes: Buffer.from([0xc1, 0xc1, 0xff, 0x00, 0x13, 0x37]), id: null },
    { name: 'text, not msgpack', bytes: Buffer.from('GET / HTTP/1.1\r\n\r\n'), id: null },
    { name: 'an empty message', bytes: Buffer.alloc(0), id: null },
    { name: 'a truncated msgpack message', bytes: truncated.subarray(0, truncated.length - 4), id: null },
    { name: 'a msgpack map instead of an array', bytes: pack({ t: 'get', space: 's', key: 'keep' }), id: null },
    { name: 'a msgpack string instead of an array', bytes: pack('hello'), id: null },
    { name: 'a nesting bomb', bytes: Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0xc0])]), id: null },
    { name: 'a frame that is not a map', bytes: pack([42]), id: null },
    { name: 'a frame with an unknown t', bytes: pack([{ t: 'frobnicate', id: 11 }]), id: 11 },
    { name: 'a frame whose t is an inherited property name', bytes: pack([{ t: 'constructor', id: 12 }]), id: 12 },
    { name: 'a frame with no t', bytes: pack([{ id: 13, space: 's' }]), id: 13 },
    { name: 'a get whose key is a number', bytes: pack([get(14, 42)]), id: 14 },
    { name: 'a get whose space is missing', bytes: pack([{ t: 'get', id: 15, v, key: 'keep' }]), id: 15 },
    { name: 'a get with an extra field', bytes: pack([{ ...get(16), extra: 1 }]), id: 16 },
    { name: 'a get whose v is negative', bytes: pack([{ ...get(17), v: -1 }]), id: 17 },
    {
      name: 'a put whose attrs hold a nested object',
      bytes: pack([{ t: 'put', id: 18, v, ...rid(18), space: 's', key: 'keep', attrs: { name: { nested: 'object' } } }]),
      id: 18,
    },
    {
      name: 'a put whose attrs hold an array',
      bytes: pack([{ t: 'put', id: 19, v, ...rid(19), space: 's', key: 'keep', attrs: { name: ['a', 'b'] } }]),
      id: 19,
    },
    {
      name: 'a put whose attrs hold NaN',
      bytes: pack([{ t: 'put', id: 20, v, ...rid(20), space: 's', key: 'keep', attrs: { n: NaN } }]),
      id: 20,
    },
    {
      name: 'an atomic_add whose delta is a string',
      bytes: pack([{ t: 'atomic_add', id: 21, v, ...rid(21), space: 's', key: 'keep', deltas: { n: '1' } }]),
      id: 21,
    },
  ];
  for (const c of cases) {
    raw.send(c.bytes);
    const error = c.id === null ? await raw.anonymousError() : await raw.answer(c.id);
    t.match(error, { t: 'error', id: c.id, code: 'BAD_REQUEST', message: String }, `${c.name}: BAD_REQUEST, id ${c.id}`);
  }
  t.same(raw.frames, [], 'no other frame was sent back');
  t.equal(raw.closed, undefined, 'the connection is still open');
}

t.test('a daemon answers every malformed message with BAD_REQUEST and keeps serving the connection', async (t) => {
  const { cluster, daemon, v } = await smallCluster(t);
  const raw = await RawSocket.open(t, daemon.address);

  // A valid request first, so we know the socket works and how a reply looks.
  raw.sendFrames([{ t: 'get', id: 1, v, space: 's', key: 'keep' }]);
  t.match(await raw.answer(1), { t: 'reply', id: 1, result: { name: 'kept', n: 1 } }, 'a valid get is served');

  await sendBadMessages(t, raw, v);

  raw.sendFrames([{ t: 'get', id: 100, v, space: 's', key: 'keep' }]);
  t.match(await raw.answer(100), { t: 'reply', id: 100, result: { name: 'kept', n: 1 } }, 'the same connection still serves a get');
  raw.sendFrames([{ t: 'put', id: 101, v, ...rid(101), space: 's', key: 'raw', attrs: { by: 'raw socket' } }]);
  t.match(await raw.answer(101), { t: 'reply', id: 101, result: null }, 'and a put');

  // One batch mixing good and bad frames: each frame is answered on its own.
  raw.sendFrames([
    { t: 'get', id: 110, v, space: 's', key: 'raw' },
    { t: 'put', id: 111, v, ...rid(111), space: 's', key: 'raw', attrs: { by: { bad: true } } },
    'not a frame',
    { t: 'get', id: 112, v, space: 's', key: 'keep' },
  ]);
  t.match(await raw.answer(110), { t: 'reply', result: { by: 'raw socket' } }, 'a good frame before a bad one is served');
  t.match(await raw.answer(111), { t: 'error', code: 'BAD_REQUEST' }, 'the bad frame of the batch is refused');
  t.match(await raw.anonymousError(), { t: 'error', code: 'BAD_REQUEST' }, 'the non-map frame of the batch is refused');
  t.match(await raw.answer(112), { t: 'reply', result: { name: 'kept', n: 1 } }, 'a good frame after a bad one is served');

  // Answers nobody asked for, and a config push from a client, are ignored: no reply, no effect.
  raw.sendFrames([
    { t: 'reply', id: 130, result: 1 },
    { t: 'error', id: 131, code: 'INTERNAL', message: 'made up' },
    { t: 'config', config: { clusterId: 'fake', incarnation: 'fake', version: 1_000, readOnly: true, servers: [], spaces: [], nextSpaceId: 1 } },
    { t: 'get', id: 132, v, space: 's', key: 'keep' },
  ]);
  t.match(await raw.answer(132), { t: 'reply', result: { name: 'kept', n: 1 } }, 'a client cannot push a config to a daemon');
  t.same(raw.frames, [], 'unsolicited answers and the pushed config got no answer at all');

  // msgpackr's record extension (structures defined inside the message) must not change how later messages,
  // on any connection, decode: 0x40..0x7f are plain integers again in the next message.
  const records = new Packr({ useRecords: true });
  raw.send(records.pack([{ t: 'put', id: 140, v, ...rid(140), space: 's', key: 'rec', attrs: { n: 64 } }]));
  t.match(await raw.answer(140), { t: 'reply', result: null }, 'a message using records is decoded');
  raw.sendFrames([{ t: 'put', id: 141, v, ...rid(141), space: 's', key: 'rec', attrs: { n: 64, m: 65 } }]);
  t.match(await raw.answer(141), { t: 'reply', result: null });
  raw.sendFrames([{ t: 'get', id: 142, v, space: 's', key: 'rec' }]);
  t.same((await raw.answer(142)).result, { n: 64, m: 65 }, 'small integers after a record message are still integers');

  // Frames that are well formed but have no business on a daemon.
  raw.sendFrames([{ t: 'get_config', id: 120 }, { t: 'register', id: 121, address: 'x:1', serverId: null, clusterId: null }]);
  t.match(await raw.answer(120), { t: 'error', code: 'BAD_REQUEST' }, 'a daemon refuses get_config');
  t.match(await raw.answer(121), { t: 'error', code: 'BAD_REQUEST' }, 'a daemon refuses register');

  t.equal(daemon.proc.exitCode, undefined, 'the daemon is still running');
  t.notMatch(daemon.proc.stderr, /"level":(50|60)/, 'the daemon logged no error or fatal line');
  await assertStillServes(t, cluster);
  t.equal(cluster.coordinator.proc.exitCode, undefined);
});

t.test('the coordinator answers every malformed message with BAD_REQUEST and keeps serving the connection', async (t) => {
  const { cluster, v } = await smallCluster(t);
  const coordinator = cluster.coordinator;
  const raw = await RawSocket.open(t, coordinator.address);

  raw.sendFrames([{ t: 'get_config', id: 1 }]);
  const first = await raw.answer(1);
  t.match(first, { t: 'reply', id: 1, result: { clusterId: String, spaces: [{ name: 's' }] } }, 'get_config is served');
  const clusterId = (first.result as { clusterId: string }).clusterId;

  await sendBadMessages(t, raw, v);

  const bad = [
    { t: 'add_space', id: 30, name: 'x', partitions: '4', tolerate: 0 },
    { t: 'add_space', id: 31, name: 'x', partitions: 0, tolerate: 0 },
    { t: 'add_space', id: 32, name: 'not a name!', partitions: 4, tolerate: 0 },
    { t: 'add_space', id: 33, name: 'x', partitions: 1_000_000, tolerate: 0 },
    { t: 'set_read_only', id: 34, readOnly: 'yes' },
    { t: 'rm_space', id: 35, name: '' },
    { t: 'get', id: 36, v, space: 's', key: 'keep' }, // well formed, but the coordinator serves no data
  ];
  raw.sendFrames(bad);
  for (const frame of bad) {
    t.match(await raw.answer(frame.id), { t: 'error', code: 'BAD_REQUEST' }, `${JSON.stringify(frame)}: BAD_REQUEST`);
  }
  raw.sendFrames([{ t: 'add_space', id: 40, name: 'x', partitions: 4, tolerate: 5 }]);
  t.match(await raw.answer(40), { t: 'error', code: 'UNAVAILABLE' }, 'a space needing more daemons than exist is refused');

  raw.sendFrames([{ t: 'get_config', id: 100 }]);
  const after = await raw.answer(100);
  t.match(after, { t: 'reply', id: 100, result: { clusterId } }, 'the same connection still serves get_config');
  const config = after.result as { spaces: Array<{ name: string }>; readOnly: boolean };
  t.same(config.spaces.map((s) => s.name), ['s'], 'no refused request created or removed a space');
  t.equal(config.readOnly, false, 'no refused request changed the read-only flag');

  t.equal(coordinator.proc.exitCode, undefined, 'the coordinator is still running');
  await assertStillServes(t, cluster);
});

t.test('keys over 64 KiB and values over the configured maximum are refused, and nothing changes', async (t) => {
  const { cluster, client, daemon, v } = await smallCluster(t, ['--value-bytes-max', '1024']);
  const hugeKey = 'k'.repeat(keyBytesMax + 1);
  const raw = await RawSocket.open(t, daemon.address);

  // Straight to the daemon, past the client's own check.
  raw.sendFrames([
    { t: 'get', id: 1, v, space: 's', key: hugeKey },
    { t: 'put', id: 2, v, ...rid(2), space: 's', key: hugeKey, attrs: { a: 1 } },
    { t: 'atomic_add', id: 3, v, ...rid(3), space: 's', key: hugeKey, deltas: { a: 1 } },
    // multi-byte characters: under the limit in characters, over it in UTF-8 bytes
    { t: 'put', id: 4, v, ...rid(4), space: 's', key: 'é'.repeat(keyBytesMax / 2 + 1), attrs: { a: 1 } },
  ]);
  for (const id of [1, 2, 3, 4]) {
    t.match(await raw.answer(id), { t: 'error', code: 'BAD_REQUEST', message: /64|65536|key/i }, `request ${id} with a huge key: BAD_REQUEST`);
  }
  const edgeKey = 'k'.repeat(keyBytesMax);
  raw.sendFrames([{ t: 'put', id: 5, v, ...rid(5), space: 's', key: edgeKey, attrs: { a: 1 } }]);
  t.match(await raw.answer(5), { t: 'reply', result: null }, 'a key of exactly 64 KiB is accepted');
  await t.rejects(client.get('s', hugeKey), { code: 'BAD_REQUEST' }, 'the client refuses a huge key too');
  await t.rejects(client.put('s', hugeKey, { a: 1 }), { code: 'BAD_REQUEST' });
  t.same(await client.get('s', edgeKey), { a: 1 }, 'the 64 KiB key was stored');
  t.equal(await client.count('s'), 2, 'no huge key was stored');

  // Values: the cluster runs with --value-bytes-max 1024.
  await client.put('s', 'v', { small: 'x'.repeat(100) });
  await t.rejects(client.put('s', 'v', { big: 'y'.repeat(2_000) }), { code: 'BAD_REQUEST', message: /1024/ },
    'a value over the maximum is refused');
  t.same(await client.get('s', 'v'), { small: 'x'.repeat(100) }, 'the previous value is unchanged');
  await t.rejects(client.put('s', 'v', { more: 'z'.repeat(950) }), { code: 'BAD_REQUEST' },
    'a put that fits alone but makes the merged value too big is refused');
  t.same(await client.atomicAdd('s', 'v', { n: 1 }), { small: 'x'.repeat(100), n: 1 }, 'a small write still works');
  await t.rejects(client.condPut('s', 'v', { n: 1 }, { more: 'z'.repeat(950) }), { code: 'BAD_REQUEST' },
    'a cond_put whose condition holds but whose result is too big is refused');
  t.same(await client.get('s', 'v'), { small: 'x'.repeat(100), n: 1 }, 'only the good write changed the value');
  await t.rejects(client.putIfNotExist('s', 'fresh', { big: 'y'.repeat(2_000) }), { code: 'BAD_REQUEST' });
  t.equal(await client.get('s', 'fresh'), undefined, 'a refused put_if_not_exist stored nothing');

  // A refused write does not disturb the writes batched with it.
  const results = await Promise.allSettled([
    client.put('s', 'b1', { a: 1 }),
    client.put('s', 'b2', { big: 'y'.repeat(2_000) }),
    client.put('s', 'b3', { a: 3 }),
    client.put('s', 'v', { big: 'y'.repeat(2_000) }),
  ]);
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected'], 'only the big writes fail');
  t.same(await client.get('s', 'b1'), { a: 1 });
  t.equal(await client.get('s', 'b2'), undefined);
  t.same(await client.get('s', 'b3'), { a: 3 });
  t.same(await client.get('s', 'v'), { small: 'x'.repeat(100), n: 1 }, 'the value is still the last good one');
  t.same(await client.get('s', 'keep'), { name: 'kept', n: 1 });
  await assertStillServes(t, cluster);
});

t.test('a message over the frame limit closes only its own connection (1009)', async (t) => {
  const { cluster, client, daemon, v } = await smallCluster(t);
  const bystander = await RawSocket.open(t, daemon.address);
  const offender = await RawSocket.open(t, daemon.address);
  const coordinatorOffender = await RawSocket.open(t, cluster.coordinator.address);

  offender.send(Buffer.alloc(frameBytesMax + 1, 0x90));
  coordinatorOffender.send(Buffer.alloc(frameBytesMax + 1, 0x90));
  t.equal((await offender.waitClosed()).code, 1009, 'the daemon closed the offending connection with 1009');
  t.equal((await coordinatorOffender.waitClosed()).code, 1009, 'the coordinator closed the offending connection with 1009');

  bystander.sendFrames([{ t: 'get', id: 1, v, space: 's', key: 'keep' }]);
  t.match(await bystander.answer(1), { t: 'reply', result: { name: 'kept', n: 1 } }, 'a connection opened before still works');
  t.equal(bystander.closed, undefined);
  const late = await RawSocket.open(t, daemon.address);
  late.sendFrames([{ t: 'get', id: 1, v, space: 's', key: 'keep' }]);
  t.match(await late.answer(1), { t: 'reply', result: { name: 'kept', n: 1 } }, 'a new connection works');
  t.same(await client.get('s', 'keep'), { name: 'kept', n: 1 }, 'the client library still works');
  t.equal(daemon.proc.exitCode, undefined, 'the daemon is still running');
  await assertStillServes(t, cluster);
});

t.test('an unknown space is NO_SUCH_SPACE, from the daemon, the coordinator and the client', async (t) => {
  const { cluster, client, daemon, v } = await smallCluster(t);
  const raw = await RawSocket.open(t, daemon.address);
  raw.sendFrames([
    { t: 'get', id: 1, v, space: 'nope', key: 'k' },
    { t: 'put', id: 2, v, ...rid(2), space: 'nope', key: 'k', attrs: { a: 1 } },
    { t: 'count', id: 3, v, space: 'nope', partition: 0 },
    { t: 'scan', id: 4, v, space: 'nope', partition: 0, after: null, limit: 10 },
  ]);
  for (const id of [1, 2, 3, 4]) {
    t.match(await raw.answer(id), { t: 'error', code: 'NO_SUCH_SPACE', message: /nope/ }, `request ${id}: NO_SUCH_SPACE`);
  }
  const coordinatorRaw = await RawSocket.open(t, cluster.coordinator.address);
  coordinatorRaw.sendFrames([{ t: 'rm_space', id: 1, name: 'nope' }]);
  t.match(await coordinatorRaw.answer(1), { t: 'error', code: 'NO_SUCH_SPACE' }, 'rm_space of an unknown space');

  await t.rejects(client.get('nope', 'k'), { code: 'NO_SUCH_SPACE' });
  await t.rejects(client.put('nope', 'k', { a: 1 }), { code: 'NO_SUCH_SPACE' });
  await t.rejects(client.count('nope'), { code: 'NO_SUCH_SPACE' });
  await t.rejects(client.rmSpace('nope'), { code: 'NO_SUCH_SPACE' });
  raw.sendFrames([{ t: 'count', id: 5, v, space: 's', partition: 4 }]);
  t.match(await raw.answer(5), { t: 'error', code: 'BAD_REQUEST' }, 'a partition past the last one is BAD_REQUEST');
  t.same(client.currentConfig.spaces.map((s) => s.name), ['s']);
  await assertStillServes(t, cluster);
});

t.test('attribute limits hold for the stored value, whichever write builds it', async (t) => {
  const { cluster, client } = await smallCluster(t);
  const attrs = (prefix: string, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, i]));
  await t.rejects(client.put('s', 'wide', attrs('a', attributesMax + 1)), { code: 'BAD_REQUEST' }, 'one put over the limit');
  t.equal(await client.get('s', 'wide'), undefined);
  await client.put('s', 'wide', attrs('a', attributesMax));
  await t.rejects(client.put('s', 'wide', { extra: 1 }), { code: 'BAD_REQUEST' }, 'a put that merges past the limit');
  await t.rejects(client.atomicAdd('s', 'wide', { extra: 1 }), { code: 'BAD_REQUEST' }, 'an atomic_add that adds past the limit');
  await t.rejects(client.condPut('s', 'wide', { a0: 0 }, { extra: 1 }), { code: 'BAD_REQUEST' }, 'a cond_put that merges past the limit');
  t.equal(Object.keys((await client.get('s', 'wide')) ?? {}).length, attributesMax, 'the value still has the largest allowed width');
  await client.put('s', 'wide', { a0: 'changed' });
  t.equal((await client.get('s', 'wide'))?.a0, 'changed', 'a put that changes existing attributes is fine');

  await t.rejects(client.atomicAdd('s', 'names', { '': 1 }), { code: 'BAD_REQUEST' }, 'atomic_add to an empty attribute name');
  await t.rejects(client.atomicAdd('s', 'names', { ['n'.repeat(attributeNameBytesMax + 1)]: 1 }), { code: 'BAD_REQUEST' },
    'atomic_add to an over-long attribute name');
  t.equal(await client.get('s', 'names'), undefined, 'nothing was stored');
  await assertStillServes(t, cluster);
});

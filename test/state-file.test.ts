// coordinator/state-file.ts: the coordinator's saved state envelope.
import t from 'tap';
import { createHash } from 'node:crypto';
import { addSpace, newCluster, registerServer, setReadOnly } from '../coordinator/cluster.js';
import { decodeState, encodeState } from '../shared/state-file.js';
import { pack, unpack } from '../shared/codec.js';
import type { ClusterConfig } from '../shared/config.js';

const sample = (): ClusterConfig => {
  let config = newCluster('18446744073709551615');
  config = registerServer(config, { address: '127.0.0.1:2001', serverId: null, clusterId: null }).config;
  config = registerServer(config, { address: '[::1]:2002', serverId: null, clusterId: null }).config;
  config = addSpace(config, 'users', 8, 1);
  return setReadOnly(config, true);
};

t.test('round trip', async (t) => {
  const config = sample();
  const bytes = encodeState(config);
  t.ok(Buffer.isBuffer(bytes));
  t.same(decodeState(bytes, 'test'), config);
  t.same(decodeState(new Uint8Array(bytes), 'test'), config, 'a plain Uint8Array decodes too');
  const empty = newCluster('1');
  t.same(decodeState(encodeState(empty), 'test'), empty, 'an empty cluster');
});

t.test('a flipped byte in the state is refused: checksum', async (t) => {
  const config = sample();
  const bytes = encodeState(config);
  const state = pack(config);
  const at = bytes.indexOf(state);
  t.ok(at > 0, 'the packed config sits inside the envelope');
  for (const offset of [0, Math.floor(state.length / 2), state.length - 1]) {
    const damaged = Buffer.from(bytes);
    damaged[at + offset] = damaged[at + offset]! ^ 0x01;
    t.throws(() => decodeState(damaged, '/data/coordinator'), {
      code: 'DATA_DIR_INVALID',
      message: /checksum/,
    }, `byte ${offset} of the state flipped`);
  }
  // The message names the source so an operator knows which file is damaged.
  const damaged = Buffer.from(bytes);
  damaged[at + 3] = damaged[at + 3]! ^ 0xff;
  t.throws(() => decodeState(damaged, '/data/coordinator'), { message: /\/data\/coordinator/ });

  // A changed checksum (state intact) is refused the same way.
  const envelope = unpack(bytes) as Record<string, unknown>;
  const forged = pack({ ...envelope, sha256: '0'.repeat(64) });
  t.throws(() => decodeState(forged, 'x'), { code: 'DATA_DIR_INVALID', message: /checksum/ });
});

t.test('foreign or broken files are refused with DATA_DIR_INVALID', async (t) => {
  const envelope = unpack(encodeState(sample())) as Record<string, unknown>;

  t.throws(() => decodeState(pack({ ...envelope, format: 'something-else' }), 'x'), {
    code: 'DATA_DIR_INVALID',
    message: /format name/,
  });
  const { format: _format, ...noFormat } = envelope;
  t.throws(() => decodeState(pack(noFormat), 'x'), { code: 'DATA_DIR_INVALID', message: /format name/ });

  t.throws(() => decodeState(pack({ ...envelope, formatVersion: 2 }), 'x'), {
    code: 'DATA_DIR_INVALID',
    message: /format version 2/,
  });
  t.throws(() => decodeState(pack({ ...envelope, formatVersion: '1' }), 'x'), { code: 'DATA_DIR_INVALID' },
    'the version must be the number 1');

  t.throws(() => decodeState(Buffer.alloc(0), 'x'), { code: 'DATA_DIR_INVALID', message: /not msgpack/ }, 'empty file');
  t.throws(() => decodeState(Buffer.from([0x92, 0x01]), 'x'), { code: 'DATA_DIR_INVALID', message: /not msgpack/ },
    'truncated msgpack');
  t.throws(() => decodeState(Buffer.from('{"format":"kv-coordinator-state"}'), 'x'), { code: 'DATA_DIR_INVALID' },
    'JSON text');
  t.throws(() => decodeState(pack(null), 'x'), { code: 'DATA_DIR_INVALID' }, 'msgpack nil');
  t.throws(() => decodeState(pack(42), 'x'), { code: 'DATA_DIR_INVALID' }, 'msgpack number');
  t.throws(() => decodeState(pack([envelope]), 'x'), { code: 'DATA_DIR_INVALID' }, 'msgpack array');

  const { state: _state, ...noState } = envelope;
  t.throws(() => decodeState(pack(noState), 'x'), { code: 'DATA_DIR_INVALID', message: /no state/ });
  t.throws(() => decodeState(pack({ ...envelope, state: 'text' }), 'x'), { code: 'DATA_DIR_INVALID', message: /no state/ });

  // A valid envelope whose config does not match the schema (checksum recomputed so it passes).
  const badConfig = pack({ ...sample(), version: 'seven' });
  const wrapped = pack({ ...envelope, state: badConfig, sha256: createHash('sha256').update(badConfig).digest('hex') });
  t.throws(() => decodeState(wrapped, 'x'), { code: 'DATA_DIR_INVALID', message: /schema/ });
});

// Known bug (reported, not fixed here): the unpack of the inner state is not guarded, so a state that passes the
// checksum but is not msgpack throws a plain Error (no code) instead of DATA_DIR_INVALID.
t.test('a checksummed state that is not msgpack is DATA_DIR_INVALID', async (t) => {
  const state = Buffer.from([0x92, 0x01]);
  const bytes = pack({ format: 'kv-coordinator-state', formatVersion: 1, sha256: createHash('sha256').update(state).digest('hex'), state });
  t.throws(() => decodeState(bytes, 'x'), { code: 'DATA_DIR_INVALID' });
});

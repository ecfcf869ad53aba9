// One WebSocket message is at most frameBytesMax (32 MiB). What would not fit is refused at once with BAD_REQUEST,
// never sent to be cut off by the peer (which closes the connection with 1009, and a retried write would hit the
// same wall until its timeout); answers that fit one by one but not together still arrive.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { Connection } from '../shared/connection.js';
import { pack } from '../shared/codec.js';
import { frameBytesMax } from '../shared/limits.js';
import { kv, messageLines, startCluster, tempDir } from './helpers/cluster.js';

const MiB = 1024 * 1024;
// Long enough that a refusal cannot be mistaken for the timeout it used to be.
const timeoutMs = 120_000;

t.test('a write over the message limit is BAD_REQUEST at once, from the client and from kv put', async (t) => {
  const cluster = await startCluster(t, { daemons: 1, coordinatorArgs: ['--value-bytes-max', String(frameBytesMax)] });
  const client = await cluster.client({ timeoutMs });
  await client.addSpace('s', { partitions: 2 });
  await client.put('s', 'k', { n: 1 });

  const huge = { big: 'y'.repeat(frameBytesMax + MiB) };
  const started = Date.now();
  await t.rejects(client.put('s', 'k', huge), { code: 'BAD_REQUEST', message: new RegExp(`put.*${frameBytesMax}`) },
    'the client refuses a put bigger than one message');
  await t.rejects(client.putIfNotExist('s', 'other', huge), { code: 'BAD_REQUEST' }, 'and a put_if_not_exist');
  await t.rejects(client.condPut('s', 'k', { n: 1 }, huge), { code: 'BAD_REQUEST' }, 'and a cond_put');
  const ms = Date.now() - started;
  t.ok(ms < timeoutMs / 2, `refused without waiting for the timeout (took ${ms} ms of ${timeoutMs})`);
  t.same(await client.get('s', 'k'), { n: 1 }, 'the stored value is unchanged');
  t.equal(await client.get('s', 'other'), undefined, 'nothing else was stored');

  const file = join(tempDir(t), 'huge.json');
  writeFileSync(file, JSON.stringify(huge));
  const result = await kv(t, ['put', 's', 'k', '--file', file, '-c', cluster.coordinator.address, '--timeout-ms', String(timeoutMs)]);
  t.equal(result.code, 2, 'kv put of a value over the message limit exits 2');
  t.match(messageLines(result.stderr), [new RegExp(`^kv: .*${frameBytesMax}.*\\(BAD_REQUEST\\)$`)], 'with one line naming the limit');
  t.same(await client.get('s', 'k'), { n: 1 }, 'still unchanged');
});

t.test('answers that fit one by one but not in one message all arrive; one that does not fit is BAD_REQUEST', async (t) => {
  const cluster = await startCluster(t, { daemons: 1, coordinatorArgs: ['--value-bytes-max', String(frameBytesMax)] });
  const client = await cluster.client({ timeoutMs });
  await client.addSpace('s', { partitions: 2 });
  const values = ['a', 'b', 'c'].map((c) => ({ v: c.repeat(12 * MiB) }));
  for (const [i, value] of values.entries()) await client.put('s', `k${i}`, value);
  // Asked together, answered together: three 12 MiB answers are more than one message holds.
  const got = await Promise.all(values.map((_, i) => client.get('s', `k${i}`)));
  t.ok(got.every((value, i) => value?.v === values[i]!.v), 'every value arrives whole');

  // A value of exactly the largest size, built by two puts: its answer is a few bytes over one message.
  const a = 'x'.repeat(16 * MiB);
  let b = 'y'.repeat(frameBytesMax - 16 * MiB);
  b = b.slice(0, b.length - (pack({ a, b }).length - frameBytesMax));
  t.equal(pack({ a, b }).length, frameBytesMax, 'the value is exactly the largest allowed');
  await client.put('s', 'edge', { a });
  await client.put('s', 'edge', { b });
  const started = Date.now();
  await t.rejects(client.get('s', 'edge'), { code: 'BAD_REQUEST', message: /answer/ }, 'its answer cannot be sent: BAD_REQUEST');
  t.ok(Date.now() - started < timeoutMs / 2, 'at once, not at the timeout');
  t.same(await client.get('s', 'k0'), values[0], 'the connection still serves');
  t.equal(cluster.daemons[0]!.proc.exitCode, undefined, 'the daemon is still running');
});

t.test('a peer that closes with 1009 fails the request it refused with BAD_REQUEST, not a retry', async (t) => {
  // A peer with a smaller limit than ours (another version, another build): it reads, never answers, and closes
  // the connection on the first message over 1 MiB.
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MiB });
  server.on('connection', (socket) => socket.on('error', () => {})); // its own 1009 is an 'error' on its side
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => {
    for (const socket of server.clients) socket.terminate();
    server.close();
  });
  const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const connection = await Connection.open(address, () => {}, 5_000);
  const small = connection.request({ t: 'get', v: 0, space: 's', key: 'small' }, timeoutMs);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the small one goes in a message of its own
  const big = connection.request({ t: 'get', v: 0, space: 's', key: 'k'.repeat(2 * MiB) }, timeoutMs);
  const [smallResult, bigResult] = await Promise.allSettled([small, big]);
  t.match(bigResult, { status: 'rejected', reason: { code: 'BAD_REQUEST', message: /1009/ } }, 'the refused request: BAD_REQUEST');
  t.match(smallResult, { status: 'rejected', reason: { code: 'CONNECTION_LOST' } }, 'the one before it was only cut off');
});

// Faults a person or a script meets at the command line: bad flags, busy ports, locked or foreign data dirs,
// backups that are not backups, and a coordinator that is not there. Each ends with one readable line on stderr
// and a meaningful exit code, and leaves a running cluster serving with nothing lost.
import t from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { WebSocketServer } from 'ws';
import { Client } from '../shared/client.js';
import { encodeState } from '../shared/state-file.js';
import {
  kv,
  messageLines,
  runKvProcess,
  startCluster,
  startCoordinator,
  startDaemon,
  tempDir,
  waitFor,
  type Cluster,
  type TestLike,
} from './helpers/cluster.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
type Result = { code: number | null; stdout: string; stderr: string };

const usageHint = '(kv --help for usage)';

/** The command failed with `code` and said why in exactly one "kv: ..." line (plus, for usage errors, the hint). */
function assertOneLine(t: TapTest, what: string, result: Result, code: number | 'non-zero', pattern: RegExp) {
  if (code === 'non-zero') {
    t.ok(result.code !== 0 && result.code !== null, `${what}: exits non-zero (got ${result.code})`);
  } else {
    t.equal(result.code, code, `${what}: exits ${code}`);
  }
  const lines = messageLines(result.stderr).filter((line) => line !== usageHint);
  t.equal(lines.length, 1, `${what}: one line on stderr besides logs (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', /^kv: /, `${what}: the line starts with "kv: "`);
  t.match(lines[0] ?? '', pattern, `${what}: the line says ${pattern}`);
  t.notMatch(result.stderr, /^\s+at /m, `${what}: no stack trace`);
}

async function seed(cluster: Cluster) {
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  await Promise.all(Array.from({ length: 20 }, (_, i) => client.put('s', `k${i}`, { i })));
  return client;
}

async function assertServes(t: TapTest, cluster: Cluster, servers: number) {
  const client = await cluster.client({ timeoutMs: 5_000 });
  t.equal(await client.count('s'), 20, 'every stored key is still there');
  t.same(await client.get('s', 'k7'), { i: 7 }, 'and reads back');
  await client.put('s', 'k7', { i: 7, touched: true });
  t.same(await client.get('s', 'k7'), { i: 7, touched: true }, 'and the cluster still takes writes');
  await client.put('s', 'k7', { touched: null });
  const config = await client.showConfig();
  t.equal(config.servers.length, servers, `the cluster still has exactly ${servers} server(s)`);
  t.equal(config.servers.filter((s) => s.state === 'available').length, servers, 'all of them available');
  t.equal(cluster.coordinator.proc.exitCode, undefined, 'the coordinator is still running');
  for (const daemon of cluster.daemons) t.equal(daemon.proc.exitCode, undefined, 'the daemon is still running');
}

/** A port nothing listens on (found by binding, then releasing it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server that accepts connections and never says a word (a hung process, a firewall black hole). */
async function blackHole(t: TestLike): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/** A WebSocket server that completes the handshake and then never answers a request. */
async function silentWebSocket(t: TestLike): Promise<number> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => {
    for (const client of server.clients) client.terminate();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

t.test('bad flags: exit 2 and one readable line', async (t) => {
  const dir = tempDir(t);
  const cases: Array<{ what: string; args: string[]; pattern: RegExp }> = [
    { what: 'no command', args: [], pattern: /command/ },
    { what: 'an unknown command', args: ['frobnicate'], pattern: /frobnicate/ },
    { what: 'an unknown flag', args: ['get', 's', 'k', '--frob', '1'], pattern: /frob/ },
    { what: 'a missing positional', args: ['get', 's'], pattern: /argument/ },
    { what: 'coordinator without --data', args: ['coordinator', '--port', '0'], pattern: /data/ },
    { what: 'daemon without --data', args: ['daemon', '--listen-port', '0'], pattern: /data/ },
    {
      what: 'daemon with --value-bytes-max (a cluster setting now)',
      args: ['daemon', '--listen-port', '0', '--data', join(dir, 'dv'), '--value-bytes-max', '1024'],
      pattern: /kv coordinator/,
    },
    {
      what: 'coordinator with a --value-bytes-max over the largest message',
      args: ['coordinator', '--port', '0', '--data', join(dir, 'cv'), '--value-bytes-max', String(64 * 1024 * 1024)],
      pattern: /value-bytes-max/,
    },
    { what: 'a --timeout-ms over 5 minutes', args: ['get', 's', 'k', '--timeout-ms', '400000'], pattern: /timeout/ },
    {
      what: 'daemon with a bad --coordinator',
      args: ['daemon', '--coordinator', 'no:such:address', '--listen-port', '0', '--data', join(dir, 'd')],
      pattern: /no:such:address/,
    },
    {
      what: 'coordinator with a port that is not a number',
      args: ['coordinator', '--port', 'abc', '--data', join(dir, 'c1')],
      pattern: /port/,
    },
    {
      what: 'coordinator with a port out of range',
      args: ['coordinator', '--port', '70000', '--data', join(dir, 'c2')],
      pattern: /70000/,
    },
    {
      what: 'daemon with a port out of range',
      args: ['daemon', '--listen-port', '-5', '--coordinator', '127.0.0.1:1', '--data', join(dir, 'd2')],
      pattern: /-5/,
    },
    { what: 'put with a value that is not JSON', args: ['put', 's', 'k', '{not json', '-c', '127.0.0.1:1'], pattern: /JSON/ },
    { what: 'put with a nested value', args: ['put', 's', 'k', '{"a":{"b":1}}', '-c', '127.0.0.1:1'], pattern: /"a"/ },
    // Every numeric flag is checked by the parser, in the flag's own terms (never NaN, never a schema path).
    ...[
      { command: ['get', 's', 'k', '-c', '127.0.0.1:1'], flag: 'timeout-ms', values: ['abc', '-5', '0', '1.5', ''] },
      { command: ['add-space', 'x', '-c', '127.0.0.1:1'], flag: 'partitions', values: ['abc', '0', '5000', '2.5'] },
      { command: ['add-space', 'x', '-c', '127.0.0.1:1'], flag: 'tolerate', values: ['-1', 'one'] },
      { command: ['backup', 'b', '-c', '127.0.0.1:1'], flag: 'lease-ms', values: ['5', 'abc'] },
      { command: ['backup', 'b', '-c', '127.0.0.1:1'], flag: 'deadline-ms', values: ['-1'] },
      { command: ['backup-manager', '--backup-dir', dir, '-c', '127.0.0.1:1'], flag: 'lease-ms', values: ['1.5'] },
      { command: ['coordinator', '--data', join(dir, 'cf')], flag: 'heartbeat-interval-ms', values: ['0', 'abc'] },
      { command: ['coordinator', '--data', join(dir, 'cf')], flag: 'heartbeat-timeout-ms', values: ['-3'] },
      { command: ['coordinator', '--data', join(dir, 'cf')], flag: 'value-bytes-max', values: ['0', 'big'] },
      { command: ['daemon', '--data', join(dir, 'df'), '-c', '127.0.0.1:1'], flag: 'listen-port', values: ['abc'] },
      { command: ['daemon', '--data', join(dir, 'df')], flag: 'coordinator-port', values: ['0', '70000'] },
      { command: ['daemon', '--data', join(dir, 'df'), '-c', '127.0.0.1:1'], flag: 'write-buffer-bytes', values: ['10', 'x'] },
      { command: ['up', '--dir', join(dir, 'up')], flag: 'daemons', values: ['0', 'three'] },
      { command: ['up', '--dir', join(dir, 'up')], flag: 'port', values: ['0', 'abc'] },
      { command: ['up', '--dir', join(dir, 'up')], flag: 'daemon-port', values: ['70000'] },
    ].flatMap(({ command, flag, values }) =>
      values.map((value) => ({
        what: `${command[0]} --${flag} ${JSON.stringify(value)}`,
        args: [...command, `--${flag}=${value}`],
        pattern: new RegExp(`^kv: --${flag} must be a whole number( of [a-z]+)?( from \\d+ to \\d+|, at least \\d+)(, not -?[\\d.]+)? \\(BAD_REQUEST\\)$`),
      })),
    ),
    { what: 'a numeric flag without its value', args: ['get', 's', 'k', '--timeout-ms'], pattern: /timeout-ms/ },
    { what: 'add-space of a bad name', args: ['add-space', 'no spaces!', '-c', '127.0.0.1:1'], pattern: /space name "no spaces!" must be 1-128 letters/ },
    { what: 'add-space of an empty name', args: ['add-space', '', '-c', '127.0.0.1:1'], pattern: /space name "" must be/ },
    { what: 'a backup name with a slash', args: ['backup', 'a/b', '-c', '127.0.0.1:1'], pattern: /backup name "a\/b" must be 1-128 letters/ },
    { what: 'backup-release of ..', args: ['backup-release', '..', '-c', '127.0.0.1:1'], pattern: /backup name "\.\." must be/ },
    {
      what: 'backup-manager with --one-replica and --all-replicas',
      args: ['backup-manager', '--backup-dir', dir, '--one-replica', '--all-replicas', '-c', '127.0.0.1:1'],
      pattern: /--one-replica and --all-replicas/,
    },
  ];
  const results = await Promise.all(cases.map((c) => kv(t, c.args)));
  cases.forEach((c, i) => assertOneLine(t, c.what, results[i]!, 2, c.pattern));
  for (const [i, c] of cases.entries()) {
    t.notMatch(results[i]!.stderr, /NaN|malformed|Expected (integer|string)|\^\(|INTERNAL/, `${c.what}: no protocol internals, NaN or INTERNAL`);
  }
});

t.test('flags named once, KV_LOG_LEVEL checked, --one-replica accepted', async (t) => {
  const dir = tempDir(t);
  const closed = `127.0.0.1:${await freePort()}`;
  const [unknown, level, oneReplica, twice] = await Promise.all([
    kv(t, ['get', 's', 'k', '--bogus-flag', '1']),
    kv(t, ['coordinator', '--port', '0', '--data', join(dir, 'c')], { KV_LOG_LEVEL: 'bogus' }),
    kv(t, ['backup-manager', '--backup-dir', dir, '--one-replica', '-c', closed]),
    kv(t, ['get', 's', 'k', '-c', '127.0.0.1:1', '--timeout-ms', 'x', '-c', closed, '--timeout-ms', '5000']),
  ]);
  assertOneLine(t, 'flags given twice: the last of each counts', twice, 3, new RegExp(`${closed}.*\\(UNAVAILABLE\\)$`));
  assertOneLine(t, 'an unknown flag', unknown, 2, /Unknown argument: bogus-flag \(BAD_REQUEST\)$/);
  t.notMatch(unknown.stderr, /bogusFlag/, 'the unknown flag is named once, as it was typed');
  assertOneLine(t, 'KV_LOG_LEVEL=bogus', level, 2, /KV_LOG_LEVEL is "bogus"; it must be one of .*debug/);
  t.notMatch(oneReplica.stderr, /Unknown argument/, '--one-replica is a flag of backup-manager');
  t.not(oneReplica.code, 2, 'and passes the parser (it fails later, on the cluster or rsync, not on usage)');
  t.not(oneReplica.code, 0);
});

t.test('a backup name taken on the daemons: BAD_REQUEST, its code said once', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  await seed(cluster);
  const out = tempDir(t);
  const args = ['backup', 'taken', '--out', out, '-c', cluster.coordinator.address];
  t.equal((await kv(t, args)).code, 0, 'the first backup of the name works');
  const again = await kv(t, args);
  assertOneLine(t, 'a second backup of the same name', again, 2, /taken.*exists already.*\(BAD_REQUEST\)$/);
  t.notMatch(again.stderr, /\(BAD_REQUEST\).*\(|\(BACKUP_FAILED\)/, 'one error code, once');
  await assertServes(t, cluster, 1);
});

t.test('a bad --coordinator address on a client command: exit 2 and one readable line', async (t) => {
  const results = await Promise.all([
    kv(t, ['get', 's', 'k', '--coordinator', 'not an address:99999']),
    kv(t, ['count', 's', '-c', 'x:']),
    kv(t, ['show-config', '-c', '127.0.0.1:70000']),
  ]);
  for (const result of results) {
    t.ok(result.code !== 0 && result.code !== null, `exits non-zero (got ${result.code})`);
    t.match(result.stderr, /is not an address/, 'stderr says the address is bad');
    t.equal(result.code, 2, 'exits 2');
    t.notMatch(result.stderr, /^\s+at /m, 'no stack trace');
    t.equal(messageLines(result.stderr).filter((line) => line !== usageHint).length, 1, 'one line');
  }
});

t.test('a port in use: a second coordinator or daemon on it exits with ADDRESS_IN_USE', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  await seed(cluster);
  const dir = tempDir(t);
  const taken = [
    kv(t, ['coordinator', '--port', String(cluster.coordinator.port), '--data', join(dir, 'coordinator')]),
    kv(t, [
      'daemon', '--listen-port', String(cluster.daemons[0]!.port), '--coordinator', cluster.coordinator.address,
      '--data', join(dir, 'daemon'),
    ]),
    // A daemon may not take the coordinator's port either.
    kv(t, [
      'daemon', '--listen-port', String(cluster.coordinator.port), '--coordinator', cluster.coordinator.address,
      '--data', join(dir, 'daemon2'),
    ]),
  ];
  const [coordinator, daemon, daemonOnCoordinatorPort] = await Promise.all(taken);
  assertOneLine(t, 'second coordinator', coordinator!, 'non-zero', /in use.*\(ADDRESS_IN_USE\)$/);
  assertOneLine(t, 'second daemon', daemon!, 'non-zero', /in use.*\(ADDRESS_IN_USE\)$/);
  assertOneLine(t, 'daemon on the coordinator port', daemonOnCoordinatorPort!, 'non-zero', /\(ADDRESS_IN_USE\)$/);
  t.match(coordinator!.stderr, String(cluster.coordinator.port), 'the line names the port');
  await assertServes(t, cluster, 1);
});

t.test('a locked data dir: a second daemon or coordinator on it exits with DATA_DIR_LOCKED', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  await seed(cluster);
  const [daemon, coordinator] = await Promise.all([
    kv(t, ['daemon', '--listen-port', '0', '--coordinator', cluster.coordinator.address, '--data', cluster.daemons[0]!.dataDir]),
    kv(t, ['coordinator', '--port', '0', '--data', cluster.coordinator.dataDir]),
  ]);
  assertOneLine(t, 'second daemon', daemon!, 'non-zero', /\(DATA_DIR_LOCKED\)$/);
  assertOneLine(t, 'second coordinator', coordinator!, 'non-zero', /\(DATA_DIR_LOCKED\)$/);
  t.notMatch(daemon!.stderr, /registered with the coordinator/, 'the second daemon never registered');
  await assertServes(t, cluster, 1);
});

t.test("a data dir of another cluster: CLUSTER_MISMATCH, and the data survives for its own cluster", async (t) => {
  const a = await startCoordinator(t);
  const first = await startDaemon(t, a.address);
  const client = await Client.connect(a.address);
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 4 });
  await Promise.all(Array.from({ length: 20 }, (_, i) => client.put('s', `k${i}`, { i })));
  t.equal(await first.proc.stop('SIGTERM'), 0, 'the daemon stops cleanly on SIGTERM');

  const b = await startCoordinator(t);
  const wrong = runKvProcess(t, ['daemon', '--listen-port', '0', '--coordinator', b.address, '--data', first.dataDir]);
  await waitFor('the daemon to exit', () => wrong.exitCode !== undefined, 15_000);
  assertOneLine(t, 'daemon of cluster A against coordinator B', { code: wrong.exitCode ?? null, stdout: wrong.stdout, stderr: wrong.stderr },
    'non-zero', /\(CLUSTER_MISMATCH\)$/);
  const probeB = await Client.connect(b.address, { subscribe: false });
  t.same((await probeB.showConfig()).servers, [], 'coordinator B did not take the daemon in');
  await probeB.close();

  const again = await startDaemon(t, a.address, { dataDir: first.dataDir });
  t.equal(again.serverId, first.serverId, 'back with cluster A, the daemon keeps its server id');
  await waitFor('the daemon available again', async () => {
    const config = await client.showConfig();
    return config.servers.length === 1 && config.servers[0]!.state === 'available';
  });
  t.equal(await client.count('s'), 20, 'every key is still there');
  t.same(await client.get('s', 'k13'), { i: 13 });
  await client.put('s', 'k13', { i: 14 });
  t.same(await client.get('s', 'k13'), { i: 14 }, 'and the daemon takes writes again');
  t.equal(a.proc.exitCode, undefined);
  t.equal(b.proc.exitCode, undefined);
});

t.test('kv coordinator --restore of something that is not a coordinator state: DATA_DIR_INVALID', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await seed(cluster);
  const config = await client.showConfig();
  const dir = tempDir(t);
  const good = encodeState(config);
  const envelope = unpack(good) as { state: Uint8Array };
  const damagedState = Buffer.from(envelope.state);
  damagedState[damagedState.length >> 1]! ^= 0xff;
  const files: Array<{ what: string; bytes: Uint8Array; pattern: RegExp }> = [
    { what: 'text', bytes: Buffer.from('this is not a backup\n'), pattern: /not a kv coordinator state/ },
    { what: 'an empty file', bytes: Buffer.alloc(0), pattern: /not a kv coordinator state/ },
    { what: 'msgpack of something else', bytes: pack({ hello: 'world' }), pattern: /format/ },
    { what: 'a newer format version', bytes: pack({ ...envelope, formatVersion: 99 }), pattern: /99/ },
    { what: 'a damaged state', bytes: pack({ ...envelope, state: damagedState }), pattern: /checksum/ },
    { what: 'a truncated state file', bytes: good.subarray(0, good.length - 10), pattern: /not a kv coordinator state/ },
    {
      what: 'a valid envelope around a config that is not one',
      bytes: encodeState({ clusterId: 42 } as unknown as typeof config),
      pattern: /schema/,
    },
  ];
  const restoreDir = join(dir, 'restored'); // every failed restore goes to the same dir: none may spoil it
  for (const [i, file] of files.entries()) {
    const path = join(dir, `bad-${i}.bin`);
    writeFileSync(path, file.bytes);
    const result = await kv(t, ['coordinator', '--restore', path, '--port', '0', '--data', restoreDir]);
    assertOneLine(t, `restore of ${file.what}`, result, 'non-zero', /\(DATA_DIR_INVALID\)$/);
    t.match(messageLines(result.stderr)[0] ?? '', file.pattern, `restore of ${file.what}: says why`);
  }
  const missing = await kv(t, ['coordinator', '--restore', join(dir, 'absent.bin'), '--port', '0', '--data', restoreDir]);
  assertOneLine(t, 'restore of a missing file', missing, 'non-zero', /absent\.bin/);

  // After all that, a real state file restores into the same dir.
  const goodPath = join(dir, 'coordinator.bin');
  writeFileSync(goodPath, good);
  const restored = await startCoordinator(t, { dataDir: restoreDir, args: ['--restore', goodPath] });
  const probe = await Client.connect(restored.address, { subscribe: false });
  const restoredConfig = await probe.showConfig();
  await probe.close();
  t.equal(restoredConfig.clusterId, config.clusterId, 'the restored coordinator runs the backed-up cluster');
  t.same(restoredConfig.spaces.map((s) => s.name), ['s'], 'with its spaces');
  t.equal(restoredConfig.readOnly, true, 'read-only, as a restore starts');
  await assertServes(t, cluster, 1);
});

t.test('a restore that fails to listen leaves its data dir ready for another try', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await seed(cluster);
  const dir = tempDir(t);
  const goodPath = join(dir, 'coordinator.bin');
  writeFileSync(goodPath, encodeState(await client.showConfig()));
  const restoreDir = join(dir, 'restored');
  const busy = await kv(t, ['coordinator', '--restore', goodPath, '--port', String(cluster.coordinator.port), '--data', restoreDir]);
  assertOneLine(t, 'restore onto a port in use', busy, 'non-zero', /\(ADDRESS_IN_USE\)$/);
  const restored = await startCoordinator(t, { dataDir: restoreDir, args: ['--restore', goodPath] });
  const probe = await Client.connect(restored.address, { subscribe: false });
  t.equal((await probe.showConfig()).clusterId, client.currentConfig.clusterId, 'the second try restores');
  await probe.close();
  await assertServes(t, cluster, 1);
});

t.test('kv get, put and count with no coordinator: exit 3 within a bounded time', async (t) => {
  // A client gives up after requestTimeoutMsDefault (10 s); kv() fails the test if a command does not exit at all.
  // Every command runs at once, so each pays the same cost of starting node on a loaded machine: that a refused
  // connection fails without waiting for the timeout shows as order, not as a time bound.
  const commands = [
    ['get', 's', 'k'],
    ['put', 's', 'k', '{"a":1}'],
    ['count', 's'],
  ];
  const run = (address: string) =>
    Promise.all(commands.map(async (command) => {
      const started = Date.now();
      const result = await kv(t, [...command, '--coordinator', address]);
      return { command, result, ms: Date.now() - started, endedAt: Date.now() };
    }));

  const refused = `127.0.0.1:${await freePort()}`;
  const hole = `127.0.0.1:${await blackHole(t)}`;
  const silent = `127.0.0.1:${await silentWebSocket(t)}`;
  const [refusedRuns, holeRuns, silentRuns] = await Promise.all([run(refused), run(hole), run(silent)]);
  const firstTimeout = Math.min(...[...holeRuns, ...silentRuns].map((r) => r.endedAt));
  for (const { command, result, ms, endedAt } of refusedRuns) {
    const what = `kv ${command[0]} against a closed port`;
    assertOneLine(t, what, result, 3, /ECONNREFUSED.*\(UNAVAILABLE\)$/);
    t.ok(endedAt < firstTimeout, `${what}: fails without waiting for a timeout (took ${ms} ms, before every command that waits one out)`);
    t.equal(result.stdout, '', `${what}: printed nothing on stdout`);
  }
  for (const [name, runs, pattern] of [
    ['a black hole (TCP accepted, no handshake)', holeRuns, /did not accept a connection.*\(UNAVAILABLE\)$/],
    ['a silent server (handshake, no answers)', silentRuns, /no answer.*\(UNAVAILABLE\)$/],
  ] as const) {
    for (const { command, result, ms } of runs) {
      const what = `kv ${command[0]} against ${name}`;
      assertOneLine(t, what, result, 3, pattern);
      t.comment(`${what}: gave up after ${ms} ms`);
      t.equal(result.stdout, '', `${what}: printed nothing on stdout`);
    }
  }
});

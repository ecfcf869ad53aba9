// The address a daemon registers: a wildcard --listen needs --advertise, a loopback one is refused with a
// coordinator elsewhere, and an advertised address is what the config holds and clients dial.
import t from 'tap';
import { join } from 'node:path';
import { Client } from '../shared/client.js';
import { advertisedAddress, checkAdvertisable } from '../shared/advertise.js';
import { freePortRange, kv, messageLines, runKvProcess, startCoordinator, startDaemon, tempDir, waitFor } from './helpers/cluster.js';

t.test('which listen, advertise and coordinator addresses are refused', async (t) => {
  t.throws(() => checkAdvertisable('0.0.0.0', undefined, '10.0.0.1:1982'), { code: 'BAD_REQUEST', message: /--advertise/ });
  t.throws(() => checkAdvertisable('::', undefined, '[fd00::1]:1982'), { code: 'BAD_REQUEST', message: /--advertise/ });
  t.throws(() => checkAdvertisable('127.0.0.1', undefined, '10.0.0.1:1982'), { code: 'BAD_REQUEST', message: /cannot reach/ });
  t.throws(() => checkAdvertisable('0.0.0.0', '0.0.0.0', '10.0.0.1:1982'), { code: 'BAD_REQUEST' }, 'a wildcard is no address to advertise');
  t.doesNotThrow(() => checkAdvertisable('127.0.0.1', undefined, '127.0.0.1:1982'), 'all on one host');
  t.doesNotThrow(() => checkAdvertisable('10.0.0.2', undefined, '10.0.0.1:1982'));
  t.doesNotThrow(() => checkAdvertisable('0.0.0.0', 'db2.example', 'coord.example:1982'));
  t.equal(advertisedAddress('0.0.0.0:2020', 'db2.example'), 'db2.example:2020', 'the bound port, unless given');
  t.equal(advertisedAddress('[::]:2020', '[fd00::2]:3030'), '[fd00::2]:3030');
  t.equal(advertisedAddress('127.0.0.1:2020', undefined), '127.0.0.1:2020');
});

t.test('kv daemon refuses an address nobody could dial, at once and with one line', async (t) => {
  const dir = tempDir(t);
  for (const [what, args, pattern] of [
    ['a wildcard without --advertise', ['--listen', '0.0.0.0'], /--listen 0\.0\.0\.0 .*add --advertise HOST/],
    ['loopback with a coordinator on another host', ['--coordinator', '192.0.2.1:1982'], /listens on 127\.0\.0\.1, which the coordinator at 192\.0\.2\.1:1982 .* cannot reach/],
  ] as const) {
    const run = await kv(t, ['daemon', ...args, '--listen-port', '0', '--data', join(dir, what.replaceAll(' ', '-'))]);
    t.equal(run.code, 2, `${what}: exits 2`);
    const lines = messageLines(run.stderr).filter((l) => l !== '(kv --help for usage)');
    t.equal(lines.length, 1, `${what}: one line (${JSON.stringify(lines)})`);
    t.match(lines[0] ?? '', pattern, `${what}: says what to pass`);
  }
});

t.test('a daemon on a wildcard registers its --advertise address, and clients reach it there', async (t) => {
  const coordinator = await startCoordinator(t);
  const daemon = await startDaemon(t, coordinator.address, { args: ['--listen', '0.0.0.0', '--advertise', '127.0.0.1'] });
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  const config = await client.showConfig();
  t.equal(config.servers.find((s) => s.id === daemon.serverId)?.address, `127.0.0.1:${daemon.port}`, 'the config holds the advertised host with the bound port');
  await client.addSpace('s', { partitions: 2 });
  await client.put('s', 'k', { v: 1 });
  t.same(await client.get('s', 'k'), { v: 1 }, 'and clients are served through it');
});

t.test('kv coordinator on a wildcard without --advertise is refused with one line saying what to pass', async (t) => {
  const run = await kv(t, ['coordinator', '--listen', '0.0.0.0', '--port', '0', '--data', join(tempDir(t), 'c')]);
  t.equal(run.code, 2, 'exits 2');
  const lines = messageLines(run.stderr).filter((l) => l !== '(kv --help for usage)');
  t.equal(lines.length, 1, `one line (${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', /--listen 0\.0\.0\.0 .*daemons and clients .*add --advertise HOST/);
});

t.test('a coordinator on a wildcard gives its --advertise address, and daemons and clients reach it there', async (t) => {
  const coordinator = await startCoordinator(t, { args: ['--listen', '0.0.0.0', '--advertise', '127.0.0.1'] });
  const listening = await coordinator.proc.waitForLog('listening');
  t.equal(listening.address, `0.0.0.0:${coordinator.port}`, 'it logs where it listens');
  t.equal(listening.advertised, `127.0.0.1:${coordinator.port}`, 'and the advertised host with the bound port');
  await startDaemon(t, coordinator.address);
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 2 });
  await client.put('s', 'k', { v: 1 });
  t.same(await client.get('s', 'k'), { v: 1 });
});

t.test('kv up --listen 0.0.0.0 --advertise gives every process the advertised host, and shows it', async (t) => {
  const port = await freePortRange(1);
  const daemonPort = await freePortRange(2);
  const up = runKvProcess(t, [
    'up', '--dir', join(tempDir(t), 'kv-data'), '--daemons', '2', '--port', String(port), '--daemon-port', String(daemonPort),
    '--listen', '0.0.0.0', '--advertise', '127.0.0.1',
  ]);
  await waitFor('kv up to report the cluster up', () => {
    if (up.exitCode !== undefined) throw new Error(`kv up exited with ${up.exitCode}: ${up.stderr.slice(-500)}`);
    return up.stdout.includes('is up');
  }, 60_000);
  t.match(up.stdout, `coordinator 127.0.0.1:${port}`, 'the coordinator by its advertised address');
  t.match(up.stdout, `127.0.0.1:${daemonPort}`, 'the daemons by theirs');
  t.notMatch(up.stdout, /0\.0\.0\.0/, 'never the wildcard');
  const client = await Client.connect(`127.0.0.1:${port}`);
  t.teardown(() => client.close());
  t.ok((await client.showConfig()).servers.every((s) => s.address.startsWith('127.0.0.1:')), 'the daemons registered the advertised host');
  await up.stop('SIGINT');
});

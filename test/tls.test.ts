// TLS on: certificates and tokens made by kv certs, a cluster whose every connection is mutual TLS, and what is
// refused — no credential, another CA's, a forged token, a role that may not make a request — with real processes.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { Client } from '../shared/client.js';
import { Connection } from '../shared/connection.js';
import { dataKey } from '../shared/key-layout.js';
import { daemonPath } from '../shared/protocol.js';
import { loadTls, type TlsSettings } from '../shared/tls.js';
import { exitCodes } from '../cli/exit-codes.js';
import { backupManager } from './helpers/backup.js';
import { freePortRange, kv, messageLines, processStartMs, startCoordinator, startDaemon, runKvProcess, tempDir, waitFor, type TestLike } from './helpers/cluster.js';

const openssl = (...args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });

/** The --tls-* flags of certificate `name` in `dir`, trusting `caDir`'s CA. */
const tlsArgs = (dir: string, name: string, caDir = dir) => [
  '--tls-cert', join(dir, `${name}.crt`), '--tls-key', join(dir, `${name}.key`), '--tls-ca', join(caDir, 'ca.crt'),
];
const tlsOf = (dir: string, name: string): TlsSettings =>
  loadTls({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(dir, 'ca.crt') })!;

async function issue(t: TestLike, dir: string, role: string, name: string, hosts: string[] = []) {
  const result = await kv(t, ['certs', 'issue', '--dir', dir, '--role', role, '--name', name, ...(hosts.length ? ['--host', ...hosts] : [])]);
  if (result.code !== 0) throw new Error(`kv certs issue ${name} exited ${result.code}: ${result.stderr}`);
}

/** Every file under `dir` whose bytes contain `text`. */
function filesContaining(dir: string, text: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isFile() && readFileSync(path).includes(text) ? [path] : [];
  });
}

t.test('kv certs init and issue make a CA and certificates openssl verifies, with the role and the hosts in them', async (t) => {
  const dir = tempDir(t);
  const init = await kv(t, ['certs', 'init', '--dir', dir]);
  t.equal(init.code, 0, init.stderr);
  t.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600, 'the CA key is 0600');
  t.match(openssl('x509', '-in', join(dir, 'ca.crt'), '-noout', '-ext', 'basicConstraints').stdout, /CA:TRUE/, 'the CA certificate is a CA');

  await issue(t, dir, 'daemon', 'daemon-1', ['10.0.0.5', '::1', 'db1.example.com']);
  const verified = openssl('verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'daemon-1.crt'));
  t.equal(verified.status, 0, `openssl verify: ${verified.stdout}${verified.stderr}`);
  const text = openssl('x509', '-in', join(dir, 'daemon-1.crt'), '-noout', '-subject', '-ext', 'subjectAltName').stdout;
  t.match(text, /OU = kv-daemon/, 'the role is the OU');
  t.match(text, /IP Address:10\.0\.0\.5/, 'an IPv4 SAN');
  t.match(text, /IP Address:0:0:0:0:0:0:0:1/, 'an IPv6 SAN');
  t.match(text, /DNS:db1\.example\.com/, 'a DNS SAN');
  t.equal(statSync(join(dir, 'daemon-1.key')).mode & 0o777, 0o600, 'the key is 0600');
  const pair = openssl('x509', '-in', join(dir, 'daemon-1.crt'), '-noout', '-pubkey').stdout;
  t.equal(openssl('pkey', '-in', join(dir, 'daemon-1.key'), '-pubout').stdout, pair, 'the key is the certificate’s');

  await issue(t, dir, 'coordinator', 'coord');
  t.match(openssl('x509', '-in', join(dir, 'coord.crt'), '-noout', '-ext', 'subjectAltName').stdout, /IP Address:127\.0\.0\.1.*DNS:localhost/s, 'a member without --host names loopback');

  const again = await kv(t, ['certs', 'init', '--dir', dir]);
  t.equal(again.code, exitCodes.usage, 'an existing CA is not overwritten');
  t.match(messageLines(again.stderr).join('\n'), /already exist.*--force/);
  const reissue = await kv(t, ['certs', 'issue', '--dir', dir, '--role', 'daemon', '--name', 'daemon-1']);
  t.equal(reissue.code, exitCodes.usage, 'nor an existing certificate');
  t.equal((await kv(t, ['certs', 'issue', '--dir', dir, '--role', 'daemon', '--name', 'daemon-1', '--force'])).code, 0, 'unless --force');
  t.equal((await kv(t, ['certs', 'issue', '--dir', dir, '--role', 'root', '--name', 'x'])).code, exitCodes.usage, 'an unknown role is a usage error');
  const repeated = await kv(t, ['certs', 'issue', '--dir', dir, '--role', 'daemon', '--name', 'twice', '--host', '10.0.0.1', '--host', '10.0.0.2']);
  t.equal(repeated.code, exitCodes.usage, 'a repeated --host is refused, not half taken');
  t.match(repeated.stderr, /one --host/);
  t.equal((await kv(t, ['certs', 'issue', '--help'])).code, 0);
  t.equal((await kv(t, ['certs', 'init', '--help'])).code, 0);
});

t.test('the TLS flags: all three or none, files readable, else one line and exit 2', async (t) => {
  const dir = tempDir(t);
  const partial = await kv(t, ['show-config', '--tls-cert', join(dir, 'x.crt')]);
  t.equal(partial.code, exitCodes.usage);
  t.match(messageLines(partial.stderr)[0], /--tls-key and --tls-ca are missing/);
  const unreadable = await kv(t, ['daemon', '--data', join(dir, 'd'), ...tlsArgs(dir, 'nobody')]);
  t.equal(unreadable.code, exitCodes.usage);
  t.match(messageLines(unreadable.stderr)[0], /--tls-(cert|key|ca) \S+: cannot read it \(ENOENT\)/);
  const daemonToken = await kv(t, ['daemon', '--data', join(dir, 'd'), '--tls-ca', join(dir, 'ca.crt'), '--token-file', join(dir, 'x.token')]);
  t.equal(daemonToken.code, exitCodes.usage, 'a daemon cannot use a token');
  const noToken = await kv(t, ['show-config', '--tls-ca', join(dir, 'ca.crt'), '--token-file', join(dir, 'x.token')]);
  t.equal(noToken.code, exitCodes.usage);
  t.match(messageLines(noToken.stderr)[0], /--tls-ca .*ca\.crt: cannot read it/, 'a client with --tls-ca and --token-file: the files are read');
});

t.test('a cluster with TLS on: data, replication and transfer over TLS, roles enforced, unauthenticated peers refused, a backup without keys', async (t) => {
  const certs = tempDir(t, 'kv-certs-');
  const other = tempDir(t, 'kv-other-ca-');
  t.equal((await kv(t, ['certs', 'init', '--dir', certs])).code, 0);
  t.equal((await kv(t, ['certs', 'init', '--dir', other])).code, 0);
  for (const name of ['coord', 'daemon-1', 'daemon-2', 'daemon-3']) await issue(t, certs, name === 'coord' ? 'coordinator' : 'daemon', name);
  await issue(t, certs, 'client', 'app');
  await issue(t, certs, 'admin', 'ops');
  await issue(t, other, 'admin', 'intruder');

  const coordinator = await startCoordinator(t, { args: tlsArgs(certs, 'coord') });
  const c = coordinator.address;
  const daemons = [await startDaemon(t, c, { args: tlsArgs(certs, 'daemon-1') }), await startDaemon(t, c, { args: tlsArgs(certs, 'daemon-2') })];
  const admin = await Client.connect(c, { tls: tlsOf(certs, 'ops'), timeoutMs: 30_000 });
  t.teardown(() => admin.close());
  const client = await Client.connect(c, { tls: tlsOf(certs, 'app'), timeoutMs: 30_000 });
  t.teardown(() => client.close());
  await waitFor('both daemons available', async () => (await client.showConfig()).servers.filter((s) => s.state === 'available').length === 2);

  await admin.addSpace('s', { partitions: 4, tolerate: 1 });
  const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
  await Promise.all(keys.map((k, i) => client.put('s', k, { i })));
  t.same((await client.get('s', 'k7')), { i: 7 }, 'a client certificate puts and gets; each write went down a chain of two over TLS');

  // A third daemon gets partitions by state transfer, daemon to daemon over TLS.
  const third = await startDaemon(t, c, { args: tlsArgs(certs, 'daemon-3') });
  await waitFor('partitions to move to the third daemon by state transfer', async () => {
    const parts = (await client.showConfig()).spaces[0]!.partitions;
    return parts.some((p) => p.chain.includes(third.serverId)) && parts.every((p) => !p.joining);
  }, 60_000);
  const values = await Promise.all(keys.map((k) => client.get('s', k)));
  t.same(values.filter((v, i) => v?.i !== i), [], 'every key reads back after the moves');
  t.equal(await client.count('s'), keys.length);

  // No credential, or another CA's: refused at the handshake, with one line.
  const plain = await new Promise<string>((resolve) => {
    const socket = new WebSocket(`ws://${c}`);
    socket.once('open', () => resolve('open'));
    socket.once('error', (error) => resolve(`refused: ${error.message}`));
  });
  t.match(plain, /^refused/, 'a plain ws:// client is refused');
  const noFlags = await kv(t, ['show-config', '--coordinator', c]);
  t.equal(noFlags.code, exitCodes.unavailable, 'kv without TLS flags cannot connect');
  t.equal(messageLines(noFlags.stderr).length, 1, noFlags.stderr);
  const foreign = await kv(t, ['show-config', '--coordinator', c, ...tlsArgs(other, 'intruder', certs)]);
  t.equal(foreign.code, exitCodes.unauthenticated, 'a certificate of another CA is refused');
  t.match(messageLines(foreign.stderr), [/refused this process's credential: its certificate is not signed by this cluster's CA \(UNAUTHENTICATED\)$/]);
  const distrust = await kv(t, ['show-config', '--coordinator', c, ...tlsArgs(other, 'intruder')]);
  t.equal(distrust.code, exitCodes.unauthenticated, 'a client trusting another CA does not trust the cluster');
  t.match(messageLines(distrust.stderr), [/is not trusted: its certificate is not signed by the CA of --tls-ca/]);
  await coordinator.proc.waitForLog('refused a connection: no valid credential');
  // A server whose certificate is the CA's but not a member's (a client's, naming this host) is not trusted either.
  await issue(t, certs, 'client', 'rogue', ['127.0.0.1']);
  const rogue = await startCoordinator(t, { args: tlsArgs(certs, 'rogue') });
  const posing = await kv(t, ['show-config', '--coordinator', rogue.address, ...tlsArgs(certs, 'ops')]);
  t.equal(posing.code, exitCodes.unauthenticated, 'a client certificate cannot pose as the coordinator');
  t.match(messageLines(posing.stderr), [/is not trusted: its certificate is a client one, not a coordinator's \(UNAUTHENTICATED\)$/]);
  await rogue.proc.stop();
  const plainCoordinator = await startCoordinator(t);
  const toPlain = await kv(t, ['show-config', '--coordinator', plainCoordinator.address, ...tlsArgs(certs, 'ops')]);
  t.equal(toPlain.code, exitCodes.unavailable, 'TLS on against a server with TLS off');
  t.match(messageLines(toPlain.stderr), [/the server does not speak TLS \(is TLS off there\?\)/]);
  await plainCoordinator.proc.stop();

  // A daemon checks for itself: another CA's certificate is refused, and only daemons may replicate.
  const spaceConfig = await client.showConfig();
  const space = spaceConfig.spaces[0]!;
  const head = spaceConfig.servers.find((s) => s.id === space.partitions[0]!.chain[0])!;
  const path = daemonPath(head.id, spaceConfig.incarnation);
  const intruder = loadTls({ cert: join(other, 'intruder.crt'), key: join(other, 'intruder.key'), ca: join(certs, 'ca.crt') });
  await t.rejects(Connection.open(head.address, () => {}, 10_000, path, intruder), { code: 'UNAUTHENTICATED', message: /not signed by this cluster's CA/ }, 'a daemon refuses another CA');
  const asClient = await Connection.open(head.address, () => {}, 10_000, path, tlsOf(certs, 'app'));
  t.teardown(() => asClient.close());
  const key = dataKey(space.id, 0, 'forged');
  await t.rejects(
    asClient.request({ t: 'replicate', v: space.partitions[0]!.since, spaceId: space.id, partition: 0, changes: [[key, Buffer.from('x')]] }, 10_000),
    { code: 'FORBIDDEN', message: /replicate needs role daemon/ },
    'a client-role connection may not replicate into a daemon',
  );
  t.equal(await client.count('s'), keys.length, 'nothing was written');

  // A client-role certificate may not change the cluster: FORBIDDEN, logged, nothing changed.
  for (const args of [['rm-space', 's'], ['set-read-only'], ['server-forget', daemons[0]!.serverId], ['list-snapshots']]) {
    const refused = await kv(t, [...args, '--coordinator', c, ...tlsArgs(certs, 'app')]);
    t.equal(refused.code, exitCodes.forbidden, `kv ${args[0]} with a client certificate exits ${exitCodes.forbidden}`);
    t.match(messageLines(refused.stderr), [/needs role admin; this connection's certificate has role client \(FORBIDDEN\)$/]);
  }
  const backupDir = tempDir(t, 'kv-backups-');
  const refusedBackup = await kv(t, ['backup-manager', '--backup-dir', backupDir, '--coordinator', c, ...tlsArgs(certs, 'app')]);
  t.equal(refusedBackup.code, exitCodes.forbidden, 'backup-manager with a client certificate is FORBIDDEN');
  const refusedLog = coordinator.proc.logs.find((l) => l.msg === 'refused a request its role may not make' && l.t === 'rm_space');
  t.match(refusedLog, { level: 40, role: 'client', peer: /^127\.0\.0\.1:\d+$/ }, 'the refusal is a warning naming the peer and its role');
  const config = await admin.showConfig();
  t.ok(config.spaces.some((s) => s.name === 's') && !config.readOnly && config.servers.length === 3, 'the space, the servers and read-write are as they were');
  t.equal(await client.count('s'), keys.length, 'and so is the data');
  await t.rejects(client.rmSpace('s'), { code: 'FORBIDDEN' }, 'the library gets FORBIDDEN too');

  // The admin may.
  t.equal((await kv(t, ['set-read-only', '--coordinator', c, ...tlsArgs(certs, 'ops')])).code, 0, 'an admin certificate sets read-only');
  t.equal((await kv(t, ['set-read-write', '--coordinator', c, ...tlsArgs(certs, 'ops')])).code, 0, 'and read-write');

  // Tokens: a client without a certificate of its own, with the role the CA signed into the token.
  const clientToken = join(certs, 'app.token');
  const adminToken = join(certs, 'ops.token');
  t.equal((await kv(t, ['certs', 'token', '--dir', certs, '--role', 'client', '--name', 'app', '--out', clientToken])).code, 0);
  t.equal((await kv(t, ['certs', 'token', '--dir', certs, '--role', 'admin', '--name', 'ops', '--out', adminToken])).code, 0);
  t.equal(statSync(clientToken).mode & 0o777, 0o600, 'a token file is 0600');
  const withToken = (file: string) => ['--coordinator', c, '--tls-ca', join(certs, 'ca.crt'), '--token-file', file];
  t.equal((await kv(t, ['put', 's', 'by-token', '{"ok":true}', ...withToken(clientToken)])).code, 0, 'a client token writes');
  const read = await kv(t, ['get', 's', 'by-token', ...withToken(clientToken)]);
  t.equal(read.stdout.trim(), '{"ok":true}', 'and reads, from the daemons too');
  const tokenRefused = await kv(t, ['rm-space', 's', ...withToken(clientToken)]);
  t.equal(tokenRefused.code, exitCodes.forbidden, 'a client token may not remove a space');
  t.match(messageLines(tokenRefused.stderr), [/has role client \(FORBIDDEN\)$/]);
  t.equal((await kv(t, ['set-read-only', ...withToken(adminToken)])).code, 0, 'an admin token may set read-only');
  t.equal((await kv(t, ['set-read-write', ...withToken(adminToken)])).code, 0, 'and read-write');
  const [head0, body, signature] = readFileSync(clientToken, 'utf8').trim().split('.');
  const claims = JSON.parse(Buffer.from(body!, 'base64url').toString('utf8')) as Record<string, unknown>;
  const forged = join(certs, 'forged.token');
  writeFileSync(forged, `${head0}.${Buffer.from(JSON.stringify({ ...claims, role: 'admin' })).toString('base64url')}.${signature}\n`);
  const forgedRun = await kv(t, ['rm-space', 's', ...withToken(forged)]);
  t.equal(forgedRun.code, exitCodes.unauthenticated, 'a token whose role was changed is refused');
  t.match(messageLines(forgedRun.stderr), [/its token is not signed by this cluster's CA \(UNAUTHENTICATED\)$/]);
  const foreignToken = join(other, 'app.token');
  t.equal((await kv(t, ['certs', 'token', '--dir', other, '--role', 'admin', '--out', foreignToken])).code, 0);
  t.equal((await kv(t, ['set-read-only', ...withToken(foreignToken)])).code, exitCodes.unauthenticated, "another CA's token is refused");
  t.notOk((await admin.showConfig()).readOnly, 'and changed nothing');

  // A daemon needs a daemon certificate to register.
  const impostor = runKvProcess(t, ['daemon', '--listen-port', '0', '--coordinator', c, '--data', join(tempDir(t), 'd'), ...tlsArgs(certs, 'app')]);
  t.equal(await impostor.waitForExit(), exitCodes.forbidden, 'a daemon with a client certificate cannot register, and exits');
  t.match(messageLines(impostor.stderr), [/register needs role daemon.*\(FORBIDDEN\)$/]);
  await waitFor('the coordinator to log the refused registration', () =>
    coordinator.proc.logs.find((l) => l.msg === 'refused a request its role may not make' && l.t === 'register' && l.role === 'client'));
  t.equal((await admin.showConfig()).servers.length, 3, 'it joined nothing');

  // A backup with TLS on, by an admin: it works, and carries no key material.
  const summary = await backupManager(t, c, backupDir, tlsArgs(certs, 'ops'));
  t.equal(summary.servers.length + summary.skipped.length, 3, 'backup-manager with an admin certificate snapshots every daemon');
  t.same(filesContaining(backupDir, 'PRIVATE KEY'), [], 'no private key in the backup');
  t.same(filesContaining(coordinator.dataDir, 'PRIVATE KEY'), [], "nor in the coordinator's saved state");

  // Restored with TLS on: a new coordinator given its own certificate flags, daemons on the copies.
  const backup = join(backupDir, summary.name);
  const root = tempDir(t, 'kv-restore-');
  const restored = await startCoordinator(t, { dataDir: join(root, 'coordinator'), args: ['--restore', join(backup, 'coordinator.bin'), ...tlsArgs(certs, 'coord')] });
  for (const [i, server] of summary.servers.entries()) {
    cpSync(join(backup, server.serverId), join(root, server.serverId), { recursive: true });
    await startDaemon(t, restored.address, { dataDir: join(root, server.serverId), args: tlsArgs(certs, `daemon-${i + 1}`) });
  }
  const after = await Client.connect(restored.address, { tls: tlsOf(certs, 'app'), timeoutMs: 30_000 });
  t.teardown(() => after.close());
  await waitFor('the restored cluster to serve every key', async () => (await after.count('s').catch(() => -1)) === keys.length + 1, 60_000); // and by-token
  t.same(await after.get('s', 'k42'), { i: 42 }, 'the restored cluster serves the data over TLS');

  t.equal((await kv(t, ['rm-space', 's', '--coordinator', c, ...tlsArgs(certs, 'ops')])).code, 0, 'an admin certificate removes a space');
  t.notOk((await admin.showConfig()).spaces.some((s) => s.name === 's'));
});

t.test('kv up --tls-dir runs its cluster with TLS on, certificates made where missing and reused', async (t) => {
  const dir = tempDir(t);
  const certs = join(dir, 'certs');
  const port = await freePortRange(1);
  const daemonPort = await freePortRange(2);
  const args = ['up', '--dir', join(dir, 'data'), '--daemons', '2', '--port', String(port), '--daemon-port', String(daemonPort), '--tls-dir', certs];
  const up = runKvProcess(t, args);
  await waitFor('kv up to report the cluster up', () => {
    if (up.exitCode !== undefined) throw new Error(`kv up exited with ${up.exitCode}: ${up.stderr.slice(-500)}`);
    return up.stdout.includes('is up');
  }, processStartMs);
  t.match(up.stdout, /--tls-cert \S+admin\.crt/, 'its hint names the admin certificate');
  const c = `127.0.0.1:${port}`;
  t.equal((await kv(t, ['add-space', 'u', '--coordinator', c, ...tlsArgs(certs, 'admin')])).code, 0, 'an admin adds a space');
  t.equal((await kv(t, ['put', 'u', 'k', '{"a":1}', '--coordinator', c, ...tlsArgs(certs, 'admin')])).code, 0);
  t.equal((await kv(t, ['get', 'u', 'k', '--coordinator', c])).code, exitCodes.unavailable, 'a command without TLS flags cannot connect');
  t.equal(await up.stop('SIGINT'), 0);
  const before = readFileSync(join(certs, 'ca.crt'), 'utf8');
  const again = runKvProcess(t, args);
  await waitFor('kv up to come up again', () => again.stdout.includes('is up') || again.exitCode !== undefined, processStartMs);
  t.equal(readFileSync(join(certs, 'ca.crt'), 'utf8'), before, 'the second run reuses the CA');
  const read = await kv(t, ['get', 'u', 'k', '--coordinator', c, ...tlsArgs(certs, 'admin')]);
  t.equal(read.stdout.trim(), '{"a":1}', 'and serves the data with TLS on');
  t.equal(await again.stop('SIGINT'), 0);
});

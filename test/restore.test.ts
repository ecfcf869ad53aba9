// Restore onto new ports and directories while the original cluster keeps running (as in the HyperDex chapter).
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../shared/client.js';
import { kv, kvScript, startCluster, startCoordinator, startDaemon, runKvProcess, tempDir, waitFor } from './helpers/cluster.js';
import { backupManager, processesMentioning, restore } from './helpers/backup.js';

t.test('a restored cluster starts read-only on new ports, shows missing servers, and opens with set-read-write', async (t) => {
  const cluster = await startCluster(t, { daemons: 3, daemonArgs: ['--write-buffer-bytes', '65536'] });
  const client = await cluster.client();
  await client.addSpace('users', { partitions: 9 });
  await Promise.all(Array.from({ length: 3_000 }, (_, i) => client.put('users', `u${i}`, { i, name: `user ${i}` })));
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, cluster.coordinator.address, root);
  const backupDir = join(root, summary.name);
  const ids = summary.servers.map((s) => s.serverId);
  t.equal(ids.length, 3);

  // Writes after the backup must not appear in the restore.
  await client.put('users', 'after-backup', { late: true });

  // Restore only two daemons first: show-config names the missing one.
  const partial = await restore(t, backupDir, ids.slice(0, 2));
  const shown = await kv(t, ['show-config', '--coordinator', partial.coordinator.address]);
  t.equal(shown.code, 0);
  t.match(shown.stdout, /flags read-only/, 'restored clusters come up read-only');
  t.match(shown.stdout, new RegExp(`not available: ${ids[2]}`), 'show-config names the server still missing');
  t.equal((await partial.client.showConfig()).clusterId, (await client.showConfig()).clusterId, 'same cluster id');

  const copy = join(tempDir(t, 'kv-restore-'), ids[2]!);
  cpSync(join(backupDir, ids[2]!), copy, { recursive: true });
  const third = await startDaemon(t, partial.coordinator.address, { dataDir: copy });
  t.equal(third.serverId, ids[2], 'the last daemon re-registers by its server id from a new address');
  await waitFor('all three restored daemons available', () =>
    partial.client.showConfig().then((c) => c.servers.every((s) => s.state === 'available')),
  );

  const restored = partial.client;
  t.equal(await restored.count('users'), 3_000, 'every key is there');
  t.same(await restored.get('users', 'u1234'), { i: 1234, name: 'user 1234' });
  t.equal(await restored.get('users', 'after-backup'), undefined, 'nothing written after the backup');
  await t.rejects(restored.put('users', 'x', { v: 1 }), { code: 'READ_ONLY' });

  const rw = await kv(t, ['set-read-write', '--coordinator', partial.coordinator.address]);
  t.equal(rw.code, 0);
  await restored.put('users', 'x', { v: 1 });
  t.same(await restored.get('users', 'x'), { v: 1 }, 'set-read-write opens the restored cluster');

  // The original cluster kept running all along, untouched by the restore.
  t.equal(await client.get('users', 'x'), undefined, 'the clusters are independent');
  t.same(await client.get('users', 'after-backup'), { late: true });
});

t.test('restore refuses a server id the backup does not know, and a non-empty data dir', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 2 });
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, cluster.coordinator.address, root);

  // A daemon that joined after the backup: same cluster, but unknown to the saved config.
  const late = await startDaemon(t, cluster.coordinator.address);
  t.equal(await late.proc.stop(), 0);

  const restored = await restore(t, join(root, summary.name), summary.servers.map((s) => s.serverId));
  const refused = runKvProcess(t, ['daemon', '--listen-port', '0', '--coordinator', restored.coordinator.address, '--data', late.dataDir]);
  t.not(await refused.exited, 0, 'the unknown daemon exits non-zero');
  t.match(refused.stderr, /UNKNOWN_SERVER/);

  const again = await kv(t, ['coordinator', '--port', '0', '--data', restored.coordinator.dataDir, '--restore', join(root, summary.name, 'coordinator.bin')]);
  t.not(again.code, 0, 'restoring into a data dir in use fails');
  await restored.coordinator.proc.stop();
  const occupied = await kv(t, ['coordinator', '--port', '0', '--data', restored.coordinator.dataDir, '--restore', join(root, summary.name, 'coordinator.bin')]);
  t.not(occupied.code, 0, 'restoring over an existing cluster state fails');
  t.match(occupied.stderr, /already holds cluster .*DATA_DIR_INVALID/);
});

t.test('a daemon joining during the freeze waits for the thaw: the backup goes through on the frozen config, then it joins', async (t) => {
  // The attempt stalls 4 s after freezing: time enough for a new daemon to start and ask to join meanwhile (and more
  // than the default frozen budget, so the test raises it).
  const coordinator = await startCoordinator(t, { args: ['--fault-stall-after-freeze-ms', '4000'] });
  const first = await startDaemon(t, coordinator.address);
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 2 });
  const out = tempDir(t);
  const backup = runKvProcess(t, ['backup', 'b1', '--out', out, '--lease-ms', '30000', '--frozen-ms-max', '60000', '--json', '--coordinator', coordinator.address]);
  await first.proc.waitForLog('frozen');
  const frozenVersion = (await client.showConfig()).version;
  // Its registration is a config change: it waits for the thaw, so the config the daemons run cannot change under the cut.
  const second = startDaemon(t, coordinator.address);
  t.equal(await backup.exited, 0, backup.stderr);
  const result = JSON.parse(backup.stdout) as { attempts: number; servers: unknown[]; configVersion: number };
  t.equal(result.attempts, 1, 'not retried');
  t.equal(result.configVersion, frozenVersion, 'the cut is the frozen config');
  t.equal(result.servers.length, 1, 'of the one daemon in it');
  await second;
  const config = await client.showConfig();
  t.equal(config.servers.length, 2, 'the second daemon joined after the thaw');
  t.equal(config.freeze, undefined, 'and the cluster is thawed');
});

/** The README's restore steps, as one shell script (the indented block after "To restore beside"). */
function readmeRestoreBlock(): string {
  const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md'), 'utf8').split('\n');
  const start = readme.findIndex((line) => line.startsWith('To restore beside'));
  const block: string[] = [];
  let i = start + 1;
  while (i < readme.length && !readme[i]!.startsWith('    ')) i++;
  for (; i < readme.length && (readme[i]!.startsWith('    ') || readme[i]!.trim() === ''); i++) block.push(readme[i]!.slice(4));
  return block.join('\n').trim();
}

/** `count` consecutive ports that are free now: the README's daemons take one port after another. */
async function consecutiveFreePorts(count: number): Promise<number> {
  const free = (port: number) => new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  for (let tries = 0; tries < 100; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let all = true;
    for (let p = base; p < base + count && all; p++) all = await free(p);
    if (all) return base;
  }
  throw new Error(`no ${count} consecutive free ports`);
}

t.test("the README's restore steps, pasted beside a running kv up cluster, bring the backup up read-write", async (t) => {
  const script = readmeRestoreBlock();
  // kv up's own ports (its --port and --daemon-port defaults, three daemons): the restore must not need them.
  const upPorts = [1982, 2012, 2013, 2014];
  const used = [...script.matchAll(/(?:--port|--listen-port|port=|127\.0\.0\.1:)\s*(\d+)/g)].map((m) => Number(m[1]));
  t.ok(used.length >= 3, `the steps name their ports (${used.join(', ')})`);
  t.same(used.filter((p) => upPorts.includes(p)), [], "none of them is one kv up takes by default");
  for (const literal of ['D=/backups', 'R=/tmp/kv-restore', 'mkdir -p $R', '--port 1992', 'port=2022', '127.0.0.1:1992']) {
    t.ok(script.includes(literal), `the steps contain ${literal}`);
  }

  // The original: kv up (on free ports, as other tests may run beside this one), a space with two replicas.
  const upDir = tempDir(t, 'kv-up-');
  const upBase = await consecutiveFreePorts(4);
  const up = runKvProcess(t, ['up', '--dir', upDir, '--port', String(upBase), '--daemon-port', String(upBase + 1)]);
  t.teardown(() => up.stop());
  await waitFor('kv up to report the cluster up', () => up.stdout.includes('is up'), 60_000);
  const original = await Client.connect(`127.0.0.1:${upBase}`, { timeoutMs: 30_000 });
  t.teardown(() => original.close());
  await original.addSpace('users', { partitions: 6, tolerate: 1 });
  await Promise.all(Array.from({ length: 300 }, (_, i) => original.put('users', `u${i}`, { i })));
  const backups = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, `127.0.0.1:${upBase}`, backups);
  t.ok(summary.skipped.length > 0, `one replica per partition: some servers were not copied (${summary.skipped.join(', ')})`);

  // As pasted, but into temp dirs and onto ports free on this machine now; `kv` is this checkout's.
  const restoreDir = join(tempDir(t, 'kv-restore-'), 'kv-restore');
  const coordinatorPort = await consecutiveFreePorts(1);
  const daemonBase = await consecutiveFreePorts(3);
  const bin = tempDir(t, 'kv-bin-');
  writeFileSync(join(bin, 'kv'), `#!/bin/sh\nexec '${process.execPath}' '${kvScript}' "$@"\n`);
  chmodSync(join(bin, 'kv'), 0o755);
  const pasted = script
    .replace('D=/backups', `D=${backups}`)
    .replace('R=/tmp/kv-restore', `R=${restoreDir}`)
    .replaceAll('1992', String(coordinatorPort))
    .replace('port=2022', `port=${daemonBase}`);
  t.teardown(() => {
    for (const pid of processesMentioning(restoreDir)) process.kill(pid, 'SIGKILL');
  });
  const shell = runKvShell(t, pasted, { PATH: `${bin}:${process.env.PATH}`, KV_LOG_LEVEL: 'warn' });
  const code = await waitFor('the pasted steps to finish', () => shell.code, 120_000);
  t.equal(code, 0, `the steps run through (${shell.output.slice(-800)})`);
  t.notMatch(shell.output, /^kv: /m, `no kv command failed (${shell.output.split('\n').filter((l) => l.startsWith('kv: ')).join(' / ')})`);
  t.match(shell.output, /flags read-only/, 'show-config says the restored cluster is read-only');

  const restored = await Client.connect(`127.0.0.1:${coordinatorPort}`, { timeoutMs: 30_000 });
  t.teardown(() => restored.close());
  const config = await restored.showConfig();
  t.same(config.servers.map((s) => s.id).sort(), summary.servers.map((s) => s.serverId).sort(), 'the servers not copied are forgotten');
  await waitFor('every restored server available', async () => (await restored.showConfig()).servers.every((s) => s.state === 'available'), 30_000);
  t.equal(await restored.count('users'), 300, 'every key is there');
  await restored.put('users', 'new', { v: 1 });
  t.same(await restored.get('users', 'new'), { v: 1 }, 'and it takes writes (set-read-write)');
  t.equal(await original.get('users', 'new'), undefined, 'the original is untouched');
  t.equal(up.exitCode, undefined, 'kv up is still running');
});

/** Runs a shell script to completion, stdout and stderr together. */
function runKvShell(t: { teardown(fn: () => unknown): void }, script: string, env: NodeJS.ProcessEnv) {
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const state: { output: string; code: number | undefined } = { output: '', code: undefined };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (state.output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (state.output += chunk));
  child.once('exit', (code) => (state.code = code ?? 128));
  t.teardown(() => {
    if (state.code === undefined) child.kill('SIGKILL');
  });
  return state;
}

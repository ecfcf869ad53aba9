// Backups when things go wrong: a missing rsync or an unusable backup directory (refused before the cluster is
// touched), two backups at once, and the CLI, the coordinator or a daemon killed in the middle of a freeze. The
// coordinator's hidden --fault-stall-after-freeze-ms holds every backup attempt right after it froze the cluster,
// which gives the tests a window to kill things in. Real processes on loopback; every wait is a polled condition.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '../shared/client.js';
import type { ClusterConfig } from '../shared/config.js';
import { partitionOf } from '../shared/partition.js';
import { backupName } from '../cli/backup/layout.js';
import {
  kv,
  messageLines,
  runKvProcess,
  startCluster,
  startCoordinator,
  startDaemon,
  tempDir,
  waitFor,
  type CoordinatorHandle,
  type DaemonHandle,
  type KvProcess,
} from './helpers/cluster.js';
import { backupManager, restore } from './helpers/backup.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const tsPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

const logsNamed = (proc: KvProcess, msg: string) => proc.logs.filter((l) => l.msg === msg);

interface Stalled {
  coordinator: CoordinatorHandle;
  daemons: DaemonHandle[];
  client: Client;
}

/** A coordinator whose every backup attempt stalls `stallMs` after freezing, and `daemons` daemons. */
async function startStalled(t: TapTest, stallMs: number, daemons = 3): Promise<Stalled> {
  const coordinator = await startCoordinator(t, { args: ['--fault-stall-after-freeze-ms', String(stallMs)] });
  const handles = await Promise.all(Array.from({ length: daemons }, () => startDaemon(t, coordinator.address)));
  const client = await Client.connect(coordinator.address, { timeoutMs: 30_000 });
  t.teardown(() => client.close());
  await waitFor(`${daemons} available daemons`, async () =>
    (await client.showConfig()).servers.filter((s) => s.state === 'available').length === daemons);
  return { coordinator, daemons: handles, client };
}

/** The daemon a key's writes go to, by `config`. */
function headOf(config: ClusterConfig, space: string, key: string): string {
  const s = config.spaces.find((x) => x.name === space)!;
  return s.partitions[partitionOf(key, s.partitions.length)]!.chain[0]!;
}

/** Sequential writers of distinct keys, each recording what was acknowledged. */
function startWriters(address: string, count: number, space: string) {
  const acked: Array<Array<number>> = Array.from({ length: count }, () => []);
  const errors: unknown[] = [];
  let stop = false;
  const loops = acked.map(async (mine, w) => {
    const c = await Client.connect(address, { timeoutMs: 30_000 });
    try {
      for (let i = 0; !stop; i++) {
        try {
          await c.put(space, `w${w}/${i}`, { w, i });
          mine.push(i);
        } catch (error) {
          errors.push(error);
          break;
        }
      }
    } finally {
      await c.close();
    }
  });
  return {
    acked,
    errors,
    total: () => acked.reduce((n, a) => n + a.length, 0),
    stop: async () => {
      stop = true;
      await Promise.all(loops);
    },
  };
}

t.test('rsync missing: backup-manager fails with one line naming rsync, before freezing', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  const before = (await client.showConfig()).version;
  const bin = tempDir(t, 'kv-path-');
  symlinkSync(process.execPath, join(bin, 'node'));
  const root = join(tempDir(t, 'kv-backups-'), 'backups');

  const result = await kv(t, ['backup-manager', '--backup-dir', root, '--coordinator', cluster.coordinator.address], { PATH: bin });
  t.not(result.code, 0, `backup-manager exits non-zero (got ${result.code})`);
  t.not(result.code, null, 'by exiting, not by a signal');
  const lines = messageLines(result.stderr);
  t.equal(lines.length, 1, `one line on stderr (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', /^kv: .*rsync/, 'the line names rsync');
  t.notMatch(result.stderr, /^\s+at /m, 'no stack trace');
  t.equal((await client.showConfig()).version, before, "the coordinator's config version is unchanged: nothing froze");
  for (const d of cluster.daemons) t.equal(logsNamed(d.proc, 'frozen').length, 0, `daemon ${d.serverId} never froze`);
  t.equal((await client.status()).lock, null, 'no backup lock is held');
  t.notOk(existsSync(root) && readdirSync(root).length > 0, 'nothing was written to the backup directory');
});

t.test('an unusable backup directory: backup-manager fails with a clear message, before freezing', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  const before = (await client.showConfig()).version;
  const file = join(tempDir(t, 'kv-backups-'), 'file');
  writeFileSync(file, 'a regular file, not a directory');
  const root = join(file, 'backups');

  const result = await kv(t, ['backup-manager', '--backup-dir', root, '--coordinator', cluster.coordinator.address]);
  t.not(result.code, 0, `backup-manager exits non-zero (got ${result.code})`);
  t.not(result.code, null, 'by exiting, not by a signal');
  const lines = messageLines(result.stderr);
  t.equal(lines.length, 1, `one line on stderr (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', /^kv: cannot create the backup directory .*\/file\/backups: .*ENOTDIR/, 'the line names the directory and why');
  t.equal((await client.showConfig()).version, before, "the coordinator's config version is unchanged: nothing froze");
  for (const d of cluster.daemons) t.equal(logsNamed(d.proc, 'frozen').length, 0, `daemon ${d.serverId} never froze`);
  t.equal(readFileSync(file, 'utf8'), 'a regular file, not a directory', 'the file in the way is untouched');

  // kv backup --out checks its directory the same way.
  const hand = await kv(t, ['backup', 'h', '--out', root, '--coordinator', cluster.coordinator.address]);
  t.not(hand.code, 0, 'kv backup --out to the same place exits non-zero');
  t.match(messageLines(hand.stderr)[0] ?? '', /^kv: cannot create the --out directory .*ENOTDIR/, 'with a clear message');
  t.equal((await client.showConfig()).version, before, 'and nothing froze either');
});

t.test('two backups at once: the second fails at once with BACKUP_IN_PROGRESS naming the first', async (t) => {
  const stallMs = 4_000;
  const { coordinator, daemons, client } = await startStalled(t, stallMs, 2);
  await client.addSpace('s', { partitions: 4 });
  const out = tempDir(t, 'kv-backup-out-');

  // The stall outlasts the default frozen budget: this backup may stay frozen longer.
  const a = runKvProcess(t, ['backup', 'a', '--out', out, '--lease-ms', '10000', '--frozen-ms-max', '20000', '--coordinator', coordinator.address]);
  await Promise.all(daemons.map((d) => d.proc.waitForLog('frozen')));
  const b = await kv(t, ['backup', 'b', '--out', out, '--lease-ms', '10000', '--coordinator', coordinator.address]);
  t.equal(a.exitCode, undefined, 'backup a is still running when b has failed');
  // Order, not a time bound: had b waited for a, a's freeze would have ended first.
  t.ok(daemons.every((d) => logsNamed(d.proc, 'thawed').length === 0), 'b failed while the cluster was still frozen for a');
  t.not(b.code, 0, 'b exits non-zero');
  const lines = messageLines(b.stderr);
  t.equal(lines.length, 1, `one line on stderr (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', /\(BACKUP_IN_PROGRESS\)$/, 'BACKUP_IN_PROGRESS');
  t.match(lines[0] ?? '', /backup a\b/, 'naming backup a');
  t.match(lines[0] ?? '', /kv backup \(pid \d+/, 'and its owner');
  t.equal(b.stdout, '', 'b printed nothing on stdout');
  t.notOk(existsSync(join(out, 'b.coordinator.bin')), 'b wrote no coordinator state');

  const status = await client.status();
  t.equal(status.lock?.name, 'a', 'kv status shows backup a holding the lock');

  await waitFor('backup a to finish', () => a.exitCode !== undefined, 20_000);
  t.equal(a.exitCode, 0, `backup a succeeds (${a.stderr.slice(-300)})`);
  t.equal(a.stdout.trim().split('\n').length, 2, 'a prints a line per daemon');
  t.ok(existsSync(join(out, 'a.coordinator.bin')), 'a wrote its coordinator state');
  for (const d of daemons) {
    t.ok(existsSync(join(d.dataDir, 'backups', 'a', 'manifest.json')), `daemon ${d.serverId} holds snapshot a`);
    t.notOk(existsSync(join(d.dataDir, 'backups', 'b')), `daemon ${d.serverId} holds no snapshot b`);
    t.equal(logsNamed(d.proc, 'frozen').length, 1, `daemon ${d.serverId} froze exactly once`);
  }
  t.equal((await client.status()).lock, null, 'the lock is free after a');
});

t.test('the backup CLI killed during the freeze: the cluster thaws and no write is lost', async (t) => {
  const { coordinator, daemons, client } = await startStalled(t, 2_000);
  await client.addSpace('s', { partitions: 12 });
  const out = tempDir(t, 'kv-backup-out-');
  const writers = startWriters(coordinator.address, 4, 's');
  await waitFor('the writers to get going', () => writers.total() >= 200);

  const backup = runKvProcess(t, ['backup', 'a', '--out', out, '--lease-ms', '10000', '--coordinator', coordinator.address]);
  await Promise.all(daemons.map((d) => d.proc.waitForLog('frozen')));
  const duringFreeze = writers.total();
  backup.child.kill('SIGKILL');
  t.equal(await backup.exited, null, 'the kv backup process is killed');
  t.ok(daemons.every((d) => logsNamed(d.proc, 'thawed').length === 0), 'the cluster is still frozen when the CLI dies');

  const thaws = await Promise.all(daemons.map((d) => d.proc.waitForLog('thawed', 15_000)));
  t.ok(thaws.every((l) => l.reason === 'config'), 'every daemon is thawed by the coordinator, not by its lease');
  const released = thaws.reduce((n, l) => n + Number(l.released), 0);
  t.ok(released > 0, `writes issued during the freeze were held and then released (${released})`);
  await waitFor('writes to flow again', () => writers.total() >= duringFreeze + released + 200, 15_000);
  await writers.stop();
  t.same(writers.errors, [], 'no write failed');
  t.equal((await client.showConfig()).freeze, undefined, 'the config carries no freeze');

  const acked = writers.acked.flatMap((is, w) => is.map((i) => ({ w, i })));
  const values = await Promise.all(acked.map(({ w, i }) => client.get('s', `w${w}/${i}`)));
  const missing = acked.filter(({ w, i }, n) => values[n]?.w !== w || values[n]?.i !== i);
  t.same(missing, [], `every one of the ${acked.length} acknowledged writes is readable`);
  t.equal(await client.count('s'), acked.length, 'and nothing else was stored');
  // The seals (checksums on the daemons' hashing threads) may still run after the thaw: wait for their end.
  await coordinator.proc.waitForLog('backup done');
  t.equal(logsNamed(coordinator.proc, 'backup done').length, 1, 'the coordinator finished the backup it was asked for');
  t.equal((await client.status()).lock, null, 'and released its backup lock');
  const release = await kv(t, ['backup-release', 'a', '--coordinator', coordinator.address]);
  t.equal(release.code, 0, 'its orphaned snapshots can be released by hand');
  for (const d of daemons) t.notOk(existsSync(join(d.dataDir, 'backups', 'a')), `daemon ${d.serverId}: snapshot a released`);
});

t.test('the coordinator killed during the freeze: daemons thaw by their lease, held writes apply exactly once', async (t) => {
  const leaseMs = 1_500;
  const { coordinator, daemons, client } = await startStalled(t, 10_000);
  await client.addSpace('c', { partitions: 4 });
  const config = await client.showConfig();
  const counterHead = daemons.find((d) => d.serverId === headOf(config, 'c', 'counter'))!;
  const probeKey = Array.from({ length: 100 }, (_, i) => `probe${i}`).find((k) => headOf(config, 'c', k) === counterHead.serverId)!;

  // Writers add 1 to one counter, each waiting for its acknowledgement before the next.
  let acked = 0;
  const errors: unknown[] = [];
  let stop = false;
  const adders = Array.from({ length: 4 }, async () => {
    while (!stop) {
      try {
        await client.atomicAdd('c', 'counter', { n: 1 });
        acked++;
      } catch (error) {
        errors.push(error);
        return;
      }
    }
  });
  await waitFor('the adders to get going', () => acked >= 100);

  const out = tempDir(t, 'kv-backup-out-');
  const backup = runKvProcess(t, ['backup', 'x', '--out', out, '--lease-ms', String(leaseMs), '--coordinator', coordinator.address]);
  const frozen = await counterHead.proc.waitForLog('frozen');
  await waitFor('the client to hold the frozen config', () => client.currentConfig.freeze !== undefined);
  coordinator.proc.child.kill('SIGKILL');
  t.equal(await coordinator.proc.exited, null, 'the coordinator is killed');
  const frozenAt = Number(frozen.time);

  const issued = Date.now();
  await client.put('c', probeKey, { probe: true });
  const completed = Date.now();
  const thawed = await counterHead.proc.waitForLog('thawed by the lease: the coordinator did not end the freeze');
  t.ok(Number(thawed.released) > 0, `the daemon held writes and released them by its lease (${thawed.released})`);
  // Order against the daemon's thaw (one host, one clock), not a time bound: held, then answered once thawed.
  const thawedAt = Number(thawed.time);
  t.ok(issued < thawedAt, `the probe put is issued while the daemon is frozen (${thawedAt - issued} ms before its thaw, ${issued - frozenAt} ms after the freeze)`);
  t.ok(completed >= thawedAt, `the probe put waited for the lease: answered ${completed - thawedAt} ms after the thaw`);
  for (const d of daemons) await d.proc.waitForLog('thawed by the lease: the coordinator did not end the freeze', 5_000);
  t.pass('every daemon thawed by its lease');

  await waitFor('backup x to fail', () => backup.exitCode !== undefined, 15_000);
  t.not(backup.exitCode, 0, 'kv backup fails when the coordinator dies');
  const atThaw = acked;
  await waitFor('the adders to keep going without the coordinator', () => acked >= atThaw + 100, 15_000);
  stop = true;
  await Promise.all(adders);
  t.same(errors, [], 'no atomic add failed');

  await startCoordinator(t, { dataDir: coordinator.dataDir, port: coordinator.port });
  const after = await waitFor('every daemon back with the restarted coordinator', async () => {
    const c = await client.showConfig();
    return c.servers.every((s) => s.state === 'available') ? c : undefined;
  }, 20_000);
  t.equal(after.freeze, undefined, 'the restarted coordinator does not bring the freeze back');
  const stored = await client.get('c', 'counter');
  t.equal(stored?.n, acked, `the counter equals the ${acked} acknowledged adds: every held write applied exactly once`);
  t.same(await client.get('c', probeKey), { probe: true }, 'the probe put is stored');
  await client.atomicAdd('c', 'counter', { n: 1 });
  t.equal((await client.get('c', 'counter'))?.n, acked + 1, 'writes apply again');
  for (const d of daemons) t.equal(logsNamed(d.proc, 'frozen').length, 1, `daemon ${d.serverId} froze once only`);
  // A write held again would show as a second freeze above; "thawed by the lease" is logged once, by the only one.
  for (const d of daemons) t.equal(logsNamed(d.proc, 'thawed by the lease: the coordinator did not end the freeze').length, 1, `daemon ${d.serverId} thawed once`);
});

t.test('a daemon killed during a backup-manager run: a clear failure, nothing complete-looking, the cluster thawed', async (t) => {
  const { coordinator, daemons, client } = await startStalled(t, 2_000);
  await client.addSpace('s', { partitions: 6 });
  await Promise.all(Array.from({ length: 300 }, (_, i) => client.put('s', `k${i}`, { i })));
  const root = tempDir(t, 'kv-backups-');
  const first = await backupManager(t, coordinator.address, root, ['--lease-ms', '10000']);
  const latest = join(root, 'LATEST');
  const latestBefore = { text: readFileSync(latest, 'utf8'), mtimeMs: statSync(latest).mtimeMs, ino: statSync(latest).ino };
  await waitFor('a new second for the next backup name', () => backupName() > first.name, 3_000);

  const manager = runKvProcess(t, ['backup-manager', '--backup-dir', root, '--lease-ms', '10000', '--coordinator', coordinator.address]);
  await waitFor('every daemon frozen for the second backup', () => daemons.every((d) => logsNamed(d.proc, 'frozen').length === 2));
  const victim = daemons[0]!;
  victim.proc.child.kill('SIGKILL');
  t.equal(await victim.proc.exited, null, `daemon ${victim.serverId} is killed`);

  await waitFor('backup-manager to exit', () => manager.exitCode !== undefined, 20_000);
  t.not(manager.exitCode, 0, `backup-manager exits non-zero (got ${manager.exitCode})`);
  const lines = messageLines(manager.stderr);
  t.equal(lines.length, 1, `one line on stderr besides logs (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', new RegExp(`^kv: backup \\S+ failed: .*server ${victim.serverId}`), 'it names the backup and the lost server');
  t.match(lines[0] ?? '', /\(BACKUP_FAILED\)$/, 'BACKUP_FAILED');

  const entries = readdirSync(root).sort();
  t.same(entries.filter((n) => tsPattern.test(n)), [first.name], 'no new complete-looking backup directory');
  t.same(entries.filter((n) => n.endsWith('.partial')), [], 'no partial directory left behind');
  t.same(entries.filter((n) => !tsPattern.test(n) && n !== 'LATEST'), [], 'nothing else in the backup directory');
  t.same({ text: readFileSync(latest, 'utf8'), mtimeMs: statSync(latest).mtimeMs, ino: statSync(latest).ino }, latestBefore, 'LATEST is untouched');
  t.equal((await client.status()).lock, null, 'the backup lock is released');

  const survivors = daemons.filter((d) => d !== victim);
  await Promise.all(survivors.map((d) => waitFor(`daemon ${d.serverId} thawed`, () => logsNamed(d.proc, 'thawed').length === 2)));
  t.ok(survivors.every((d) => logsNamed(d.proc, 'thawed')[1]!.reason === 'config'), 'the coordinator thawed the survivors');
  const config = await client.showConfig();
  t.equal(config.freeze, undefined, 'the config carries no freeze');
  const keys = Array.from({ length: 200 }, (_, i) => `after${i}`).filter((k) => headOf(config, 's', k) !== victim.serverId).slice(0, 20);
  t.equal(keys.length, 20, 'some keys live on the surviving daemons');
  await Promise.all(keys.map((k) => client.put('s', k, { k })));
  // Not held: held writes would be released only by a lease, which the survivors (thawed by the coordinator) never used.
  t.ok(survivors.every((d) => logsNamed(d.proc, 'thawed by the lease: the coordinator did not end the freeze').length === 0),
    'writes to the surviving daemons succeed, none held until a lease ran out');
  t.same((await Promise.all(keys.map((k) => client.get('s', k)))).map((v) => v?.k), keys, 'and read back');
  for (const d of survivors) t.notOk(existsSync(join(d.dataDir, 'backups')) && readdirSync(join(d.dataDir, 'backups')).length > 0, `daemon ${d.serverId} kept no snapshot`);

  const back = await startDaemon(t, coordinator.address, { dataDir: victim.dataDir });
  t.equal(back.serverId, victim.serverId, 'the daemon comes back with its id');
  await waitFor('three available daemons', async () => (await client.showConfig()).servers.filter((s) => s.state === 'available').length === 3);
  const next = await backupManager(t, coordinator.address, root, ['--lease-ms', '10000']);
  t.equal(next.previous, first.name, 'the next backup-manager run succeeds, incremental on the first');
  t.equal(next.servers.length, 3, 'with all three daemons');
  t.equal(readFileSync(latest, 'utf8').trim(), next.name, 'LATEST names it');
  const verify = await kv(t, ['verify-backup', join(root, next.name)]);
  t.equal(verify.code, 0, `and it verifies (${verify.stdout.trim().split('\n').at(-1)})`);
});

t.test('a restored cluster refuses a daemon data dir of another cluster with CLUSTER_MISMATCH', async (t) => {
  const a = await startCluster(t, { daemons: 2 });
  const clientA = await a.client();
  await clientA.addSpace('s', { partitions: 4 });
  await Promise.all(Array.from({ length: 40 }, (_, i) => clientA.put('s', `k${i}`, { i })));
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, a.coordinator.address, root);

  const b = await startCluster(t, { daemons: 1 });
  const foreign = b.daemons[0]!;
  t.equal(await foreign.proc.stop('SIGTERM'), 0, "cluster B's daemon stops cleanly");
  const clusterB = (await (await b.client()).showConfig()).clusterId;

  const restored = await restore(t, join(root, summary.name), summary.servers.map((s) => s.serverId));
  const before = await restored.client.showConfig();
  t.equal(before.clusterId, summary.clusterId, "the restored coordinator runs cluster A's id");
  t.not(before.clusterId, clusterB, 'which is not cluster B');
  t.equal(await restored.client.count('s'), 40, 'the restored cluster serves the backed-up data');

  const wrong = runKvProcess(t, ['daemon', '--listen-port', '0', '--coordinator', restored.coordinator.address, '--data', foreign.dataDir]);
  await waitFor('the foreign daemon to exit', () => wrong.exitCode !== undefined, 15_000);
  t.not(wrong.exitCode, 0, `the foreign daemon exits non-zero (got ${wrong.exitCode})`);
  t.not(wrong.exitCode, null, 'by exiting, not by a signal');
  const lines = messageLines(wrong.stderr);
  t.equal(lines.length, 1, `one line on stderr besides logs (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', /\(CLUSTER_MISMATCH\)$/, 'CLUSTER_MISMATCH');
  t.match(lines[0] ?? '', new RegExp(clusterB), "naming the daemon's own cluster");
  t.notMatch(wrong.stderr, /registered with the coordinator/, 'it never registered');
  const afterConfig = await restored.client.showConfig();
  t.same(afterConfig.servers.map((s) => s.id).sort(), before.servers.map((s) => s.id).sort(), 'the restored cluster took no new server');
  t.equal(await restored.client.count('s'), 40, 'and still serves its data');
  t.equal(restored.coordinator.proc.exitCode, undefined, 'the restored coordinator keeps running');
  for (const d of restored.daemons) t.equal(d.proc.exitCode, undefined, 'the restored daemons keep running');
  t.equal(existsSync(join(foreign.dataDir, 'leveldb')), true, "the foreign daemon's data dir is left in place");
});

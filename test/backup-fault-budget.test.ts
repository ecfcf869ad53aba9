// Backups that cannot hurt the cluster they protect (issue 13): a backup attempted while a daemon cannot quiesce
// keeps the cluster's frozen time within the frozen budget (watched from inside, in the coordinator's and daemons'
// logs, and from outside, by the acknowledgements of a writer to a space the fault does not touch), and a failed
// backup leaves no snapshot behind, a prepare delivered after its attempt failed included. Real processes on
// loopback; a TCP proxy (test/jepsen/nemesis.ts) stands in for the network between daemons.
import t from 'tap';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '../shared/client.js';
import type { ClusterConfig } from '../shared/config.js';
import type { SnapshotInfo } from '../shared/protocol.js';
import { partitionOf } from '../shared/partition.js';
import { backupFrozenMsMaxDefault, backupQuiesceMsMax, backupUnfrozenPerFrozenMin } from '../shared/limits.js';
import { CoordinatorProxy } from './jepsen/nemesis.js';
import { HoldingProxy, msgpackString } from './helpers/holding-proxy.js';
import { freePort, kv, messageLines, runKvProcess, startCoordinator, startDaemon, tempDir, waitFor, type DaemonHandle, type KvProcess, type TestLike } from './helpers/cluster.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const logsNamed = (proc: KvProcess, msg: string) => proc.logs.filter((l) => l.msg === msg);

function chainOf(config: ClusterConfig, space: string, key: string): string[] {
  const s = config.spaces.find((x) => x.name === space)!;
  return s.partitions[partitionOf(key, s.partitions.length)]!.chain;
}

const candidateKeys = Array.from({ length: 2000 }, (_, i) => `k${i}`);

/** The snapshot directories under a daemon's data dir. */
const snapshotDirs = (d: DaemonHandle) => (existsSync(join(d.dataDir, 'backups')) ? readdirSync(join(d.dataDir, 'backups')) : []);

async function listSnapshots(t: TestLike, coordinator: string) {
  const listed = await kv(t, ['list-snapshots', '--json', '--coordinator', coordinator]);
  return { code: listed.code, ...(JSON.parse(listed.stdout) as { snapshots: Array<SnapshotInfo & { serverId: string; ageMs: number }>; unreachable: unknown[] }) };
}

t.test('a backup while a daemon cannot quiesce: it fails within the frozen budget, and writes elsewhere keep flowing', async (t) => {
  const coordinator = await startCoordinator(t);
  const a = await startDaemon(t, coordinator.address);
  const c = await startDaemon(t, coordinator.address);
  // Daemon b is reached, by clients and the other daemons alike, through a proxy: cutting it is a network cut
  // between b's host and everyone else's, while b's own link to the coordinator stays up.
  const bPort = await freePort();
  const proxy = await CoordinatorProxy.start(`127.0.0.1:${bPort}`);
  t.teardown(() => proxy.close());
  const b = await startDaemon(t, coordinator.address, { port: bPort, args: ['--advertise', proxy.address] });
  const client = await Client.connect(coordinator.address, { timeoutMs: 120_000 });
  t.teardown(() => client.close());
  await waitFor('3 available daemons', async () => (await client.showConfig()).servers.filter((s) => s.state === 'available').length === 3);
  await client.addSpace('chained', { partitions: 8, tolerate: 1 });
  await client.addSpace('free', { partitions: 8 });
  const config = await client.showConfig();

  // Writes whose chain runs from another daemon into b: once b is cut off, their heads cannot quiesce.
  const intoB = candidateKeys.filter((k) => chainOf(config, 'chained', k)[1] === b.serverId).slice(0, 4);
  t.equal(intoB.length, 4, 'some chains run into daemon b');
  const heads = new Set(intoB.map((k) => chainOf(config, 'chained', k)[0]!));
  // The writer measured from outside: keys on a space whose partitions b does not hold.
  const freeKeys = candidateKeys.filter((k) => chainOf(config, 'free', k)[0] !== b.serverId).slice(0, 50);
  const acks: number[] = [];
  const writeErrors: unknown[] = [];
  let stop = false;
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        await client.put('free', freeKeys[i % freeKeys.length]!, { i });
        acks.push(performance.now());
      } catch (error) {
        writeErrors.push(error);
        return;
      }
    }
  })();
  await waitFor('the writer to get going', () => acks.length >= 100);

  proxy.cut();
  const stuck = intoB.map((k) => client.put('chained', k, { stuck: true }).then(() => 'done', (error: Error) => error.message));
  const before = acks.length;
  await waitFor('the writer to go on while the writes into b hang', () => acks.length >= before + 100);

  const started = performance.now();
  const backup = await kv(t, ['backup', 'x', '--out', tempDir(t), '--coordinator', coordinator.address]);
  const endedAt = performance.now();
  const tookMs = endedAt - started;
  stop = true;
  await writer;
  t.same(writeErrors, [], 'no write to the free space failed');

  // A cluster that detects cuts between daemons may take b out of its chains meanwhile; then the fault has passed
  // and the backup may succeed. While b stays in them, no attempt can quiesce and the backup must fail.
  const after = await client.showConfig();
  const faultLasted = after.spaces.some((sp) => sp.partitions.some((p) => p.chain.includes(b.serverId)));
  const lines = messageLines(backup.stderr);
  let total: RegExpExecArray | null;
  if (faultLasted) {
    t.not(backup.code, 0, 'the backup fails');
    t.equal(lines.length, 1, `with one line (${JSON.stringify(lines)})`);
    const line = lines[0] ?? '';
    t.match(line, /\(BACKUP_FAILED\)$/, 'BACKUP_FAILED');
    t.match(line, /did not quiesce within \d+ ms/, 'saying that daemons did not quiesce');
    for (const id of heads) t.match(line, new RegExp(`\\b${id} \\(`), `naming daemon ${id}, whose writes into b hang`);
    t.notMatch(line, new RegExp(`\\b${b.serverId} \\(`), 'and not b, which quiesced');
    total = /frozen (\d+) ms in all/.exec(line);
    t.ok(total, 'and the total frozen time');
  } else {
    t.comment('the cluster took b out of its chains during the backup: the fault passed');
    t.equal(backup.code, 0, `then the backup succeeds (${lines.join(' ')})`);
    total = /frozen ([\d.]+) ms over all attempts/.exec(backup.stderr);
    t.ok(total, 'and reports its total frozen time');
    t.equal((await kv(t, ['backup-release', 'x', '--coordinator', coordinator.address])).code, 0, 'its snapshots are released');
  }
  t.ok(Number(total?.[1]) <= backupFrozenMsMaxDefault, `the total frozen time is within the budget (${total?.[1]} ms of ${backupFrozenMsMaxDefault})`);

  // Inside: the coordinator's attempts and every daemon's freezes.
  const attempts = logsNamed(coordinator.proc, 'backup attempt backed out');
  const frozenMs = attempts.map((l) => Number(l.frozenMs));
  t.ok(!faultLasted || attempts.length >= 2, `the backup was tried more than once (${attempts.length} attempts backed out, frozen ${frozenMs.join(', ')} ms)`);
  // The thaw is a config change (a synced LevelDB write): some tens of ms on a loaded two-core machine.
  t.ok(frozenMs.every((ms) => ms <= backupQuiesceMsMax + 300), 'each attempt thawed once its quiesce wait ran out');
  t.ok(frozenMs.reduce((x, y) => x + y, 0) <= backupFrozenMsMaxDefault, 'the attempts add up to at most the budget');
  const retries = logsNamed(coordinator.proc, 'retrying the backup');
  t.equal(retries.length, attempts.length - (faultLasted ? 1 : 0), 'every attempt backed out but a last one was retried');
  // Logged rounded to the ms: a few ms of slack.
  t.ok(retries.every((l) => Number(l.waitMs) >= backupUnfrozenPerFrozenMin * Number(l.frozenMs) - backupUnfrozenPerFrozenMin),
    `each retry waited, unfrozen, at least ${backupUnfrozenPerFrozenMin}× the freeze before it (${retries.map((l) => `${l.waitMs} after ${l.frozenMs}`).join(', ')} ms)`);
  for (const d of [a, b, c]) {
    const thaws = logsNamed(d.proc, 'thawed');
    const held = thaws.reduce((sum, l) => sum + Number(l.heldMs), 0);
    t.equal(logsNamed(d.proc, 'frozen').length, thaws.length, `daemon ${d.serverId} thawed after every freeze`);
    t.ok(thaws.every((l) => l.reason === 'config'), `daemon ${d.serverId} was thawed by the coordinator each time, never by its lease`);
    t.ok(held <= backupFrozenMsMaxDefault, `daemon ${d.serverId} was frozen ${held} ms in all, within the budget`);
  }
  t.ok(tookMs < 30_000, `the backup gave up in ${Math.round(tookMs)} ms`);

  // Outside: acknowledgements to the free space during the backup.
  const during = acks.filter((at) => at >= started && at <= endedAt);
  const gaps = during.slice(1).map((at, i) => at - during[i]!);
  const longest = Math.max(...gaps);
  // Waits of a few hundred ms happen on a shared two-core machine without any freeze; a freeze is longer.
  const stalled = gaps.filter((g) => g > 300).reduce((x, y) => x + y, 0);
  t.ok(during.length > 100, `writes kept being acknowledged during the backup (${during.length})`);
  t.ok(longest <= backupQuiesceMsMax + 500, `the longest wait between acknowledgements was ${Math.round(longest)} ms, about one attempt's freeze`);
  t.ok(stalled <= backupFrozenMsMaxDefault + 1_000, `waits over 300 ms add up to ${Math.round(stalled)} ms, about the budget at most`);
  t.comment(`gaps over 300 ms: ${gaps.map((g, i) => [Math.round(during[i]! - started), Math.round(g)]).filter(([, g]) => g! > 300).map(([at, g]) => `${g} at +${at}`).join(', ')}`);
  t.comment(`frozen ${total?.[1]} ms in ${attempts.length} attempts, backup failed after ${Math.round(tookMs)} ms; longest gap ${Math.round(longest)} ms, stalled ${Math.round(stalled)} ms`);

  t.equal((await client.showConfig()).freeze, undefined, 'nothing is left frozen');
  proxy.heal();
  t.same(await Promise.all(stuck), intoB.map(() => 'done'), 'after the heal, the writes into b complete');
  await client.put('free', 'after', { ok: true });
  t.same(await client.get('free', 'after'), { ok: true }, 'and writes work');
  const left = await listSnapshots(t, coordinator.address);
  t.same(left.snapshots, [], 'kv list-snapshots shows nothing left');
  for (const d of [a, b, c]) t.same(snapshotDirs(d), [], `no snapshot directory is left on daemon ${d.serverId}`);
});

t.test('a prepare delivered after its attempt failed leaves no snapshot', async (t) => {
  const port = await freePort();
  const coordinator = await startCoordinator(t, { port });
  // Daemon b reaches the coordinator through a proxy that will hold the coordinator's prepare and deliver it after
  // the attempt has failed (here: its coordinator died), as a request sent into a network cut arrives after the heal.
  const proxy = await HoldingProxy.start(coordinator.address);
  t.teardown(() => proxy.close());
  const a = await startDaemon(t, coordinator.address);
  const c = await startDaemon(t, coordinator.address);
  const b = await startDaemon(t, proxy.address);
  const daemons = [a, b, c];
  const client = await Client.connect(coordinator.address, { timeoutMs: 30_000 });
  t.teardown(() => client.close());
  await waitFor('3 available daemons', async () => (await client.showConfig()).servers.filter((s) => s.state === 'available').length === 3);
  await client.addSpace('s', { partitions: 6, tolerate: 1 });
  await Promise.all(Array.from({ length: 200 }, (_, i) => client.put('s', `k${i}`, { i })));

  proxy.holdFrom(msgpackString('prepare'));
  const backup = runKvProcess(t, ['backup', 'late', '--out', tempDir(t), '--coordinator', coordinator.address]);
  await waitFor('the prepare to b held, and a and c prepared', () => proxy.holding && [a, c].every((d) => snapshotDirs(d).includes('late')));
  t.notOk(snapshotDirs(b).includes('late'), 'b has not seen its prepare yet');
  coordinator.proc.child.kill('SIGKILL');
  t.equal(await coordinator.proc.exited, null, 'the coordinator dies in the middle of the attempt');
  t.not(await backup.waitForExit(), 0, 'the backup fails');

  proxy.release();
  for (const d of daemons) {
    const released = await d.proc.waitForLog('released a snapshot prepared on a coordinator session that has closed');
    t.equal(released.backup, 'late', `daemon ${d.serverId} released the snapshot prepared on its closed session${d === b ? ' (b: made by the late prepare)' : ''}`);
  }
  await startCoordinator(t, { port, dataDir: coordinator.dataDir });
  await waitFor('3 available daemons again', async () => (await client.showConfig()).servers.filter((s) => s.state === 'available').length === 3, 30_000);
  const left = await listSnapshots(t, coordinator.address);
  t.equal(left.code, 0, 'list-snapshots reaches every daemon');
  t.same(left.snapshots, [], 'and shows no snapshot');
  for (const d of daemons) t.same(snapshotDirs(d), [], `no snapshot directory is left on daemon ${d.serverId}`);
  const again = await kv(t, ['backup', 'late', '--out', tempDir(t), '--coordinator', coordinator.address]);
  t.equal(again.code, 0, `a backup of the same name succeeds afterwards (${messageLines(again.stderr).join(' ')})`);
});

t.test('an unsealed snapshot left on a daemon is released when it registers; list-snapshots shows one under way', async (t) => {
  const coordinator = await startCoordinator(t, { args: ['--fault-stall-after-freeze-ms', '8000'] });
  const daemons = await Promise.all([0, 1].map(() => startDaemon(t, coordinator.address)));
  const client = await Client.connect(coordinator.address, { timeoutMs: 30_000 });
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 4 });
  await Promise.all(Array.from({ length: 100 }, (_, i) => client.put('s', `k${i}`, { i })));

  // While an attempt stalls in its freeze, its snapshots are prepared: listed with owner and age.
  const out = tempDir(t);
  const running = kv(t, ['backup', 'kept', '--out', out, '--lease-ms', '20000', '--frozen-ms-max', '30000', '--coordinator', coordinator.address]);
  await Promise.all(daemons.map((d) => d.proc.waitForLog('frozen')));
  const during = await listSnapshots(t, coordinator.address);
  t.equal(during.snapshots.length, 2, 'list-snapshots shows the snapshot under way on both daemons');
  t.ok(during.snapshots.every((s) => s.state === 'prepared' && !s.sealed), 'as prepared, not sealed');
  t.ok(during.snapshots.every((s) => /^kv backup \(pid \d+ on /.test(s.owner ?? '')), 'with its owner');
  t.ok(during.snapshots.every((s) => s.ageMs >= 0 && s.ageMs < 60_000), 'and its age');
  const text = await kv(t, ['list-snapshots', '--coordinator', coordinator.address]);
  t.match(text.stdout, /kept .*kv backup \(pid \d+ .*prepared, not captured/, 'the table says so too');
  t.equal((await running).code, 0, 'that backup succeeds');

  // Debris of a backup that died mid-way: a snapshot directory with no manifest, on a daemon that restarts.
  const victim = daemons[0]!;
  t.equal(await victim.proc.stop('SIGTERM'), 0, `daemon ${victim.serverId} stops`);
  const debris = join(victim.dataDir, 'backups', 'debris', 'leveldb');
  mkdirSync(debris, { recursive: true });
  writeFileSync(join(debris, 'CURRENT'), 'MANIFEST-000001\n');
  const back = await startDaemon(t, coordinator.address, { dataDir: victim.dataDir });
  await waitFor('the coordinator to sweep the debris', () =>
    logsNamed(coordinator.proc, 'released an unsealed snapshot no running backup owns').find((l) => l.backup === 'debris'), 15_000);
  t.notOk(existsSync(join(victim.dataDir, 'backups', 'debris')), 'the unsealed snapshot is gone from its data dir');
  t.ok(existsSync(join(back.dataDir, 'backups', 'kept', 'manifest.json')), 'the sealed kv backup snapshot is kept');
  const left = await listSnapshots(t, coordinator.address);
  t.same(left.snapshots.map((s) => `${s.serverId}:${s.name}:${s.state}`).sort(), daemons.map((d) => `${d.serverId}:kept:sealed`).sort(), 'list-snapshots shows only the sealed ones');
});

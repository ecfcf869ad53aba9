// kv backup-manager on a backup host of its own, copying every daemon's snapshot over ssh (sshd from
// openssh-server on each daemon host, test/helpers/lab.ts), incremental, and restored onto other hosts beside the
// original; a backup whose daemon host is cut off mid-copy; and the cluster and a backup on IPv6 addresses only.
import t from 'tap';
import { cpSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackupSummary } from '../cli/backup/manager.js';
import { Lab, labCluster, labCoordinator, labDaemon, labDisk, labUnavailable, type LabCluster, type LabHost } from './helpers/lab.js';
import { check, finalReads, startWorkload } from './helpers/lab-workload.js';
import { slowRsyncPath } from './helpers/backup.js';
import { waitFor, type TestLike } from './helpers/cluster.js';
import { now } from './jepsen/worker.js';
import type { Op } from './jepsen/history.js';

const why = await labUnavailable();
const space = 'lab';
const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
const hosts = { coordinator: 'coord', daemons: ['d1', 'd2', 'd3'], client: 'client' };

/** backup-manager on the backup host into its disk; the summary, or the failed run's output. */
async function backup(t: TestLike, lab: Lab, cluster: LabCluster, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const run = await lab.host('backup').kv(t, [
    'backup-manager', '--backup-dir', `${labDisk}/backups`, '--coordinator', cluster.coordinator.address,
    '--rsh', lab.rsh, '--json', ...args,
  ], env);
  return { ...run, summary: run.code === 0 ? (JSON.parse(run.stdout) as BackupSummary) : undefined };
}

async function startBackupLab(t: TestLike, extra: string[] = [], options: { family?: 'ipv6'; coordinatorArgs?: string[] } = {}) {
  const lab = await Lab.start(t, [hosts.coordinator, ...hosts.daemons, hosts.client, 'backup', ...extra], options);
  // A small write buffer, so that writes reach table files, which the next backup hard-links when unchanged.
  const cluster = await labCluster(t, lab, hosts, { ...options, daemonArgs: ['--write-buffer-bytes', '65536'] });
  for (const d of hosts.daemons) await lab.startSshd(t, d);
  return { lab, cluster };
}

async function addSpace(t: TestLike & { equal: Function }, cluster: LabCluster) {
  const added = await cluster.client.kv(t, ['add-space', space, '--partitions', '6', '--tolerate', '1', '-c', cluster.coordinator.address]);
  t.equal(added.code, 0, added.stderr);
}

/** `count` values of 300 KB of text that does not compress, written from the client host. */
async function putBig(t: TestLike & { equal: Function }, cluster: LabCluster, count: number) {
  writeFileSync(join(cluster.client.disk, 'big.json'), JSON.stringify({ blob: Buffer.alloc(300_000).map(() => 65 + Math.floor(Math.random() * 26)).toString() }));
  for (let i = 0; i < count; i++) {
    const put = await cluster.client.kv(t, ['put', space, `big${i}`, '--file', `${labDisk}/big.json`, '-c', cluster.coordinator.address]);
    t.equal(put.code, 0, put.code === 0 ? `big${i} written` : put.stderr);
  }
}

/** Every file under dir, relative. */
const filesUnder = (dir: string, prefix = ''): string[] =>
  readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(dir, join(prefix, e.name)) : [join(prefix, e.name)]);

if (why) {
  t.plan(0, `lab tests skipped: ${why}`);
} else {
  t.test('backups from a backup host over ssh, incremental, restored onto other hosts beside the original', async (t) => {
    const { lab, cluster } = await startBackupLab(t, ['rcoord', 'r1', 'r2', 'r3']);
    await addSpace(t, cluster);
    // Beyond the daemons' write buffer: table files, which the second backup links instead of copying.
    await putBig(t, cluster, 2);
    const history: Op[] = await startWorkload(t, cluster.client, cluster.coordinator.address, { space, keys, seconds: 3, seed: 1 }).finished();
    const first = await backup(t, lab, cluster);
    t.equal(first.code, 0, first.code === 0 ? 'the first backup succeeds' : first.stderr.slice(-1500));
    t.ok(first.summary!.servers.every((s) => s.host.startsWith('10.13.0.')), 'every daemon was copied from its host');
    // More writes, then the second backup: only what changed is copied.
    const more = await startWorkload(t, cluster.client, cluster.coordinator.address, { space, keys, seconds: 2, seed: 2 }).finished();
    history.push(...more);
    const second = await backup(t, lab, cluster);
    t.equal(second.code, 0, second.code === 0 ? 'the second backup succeeds' : second.stderr.slice(-1500));
    const s2 = second.summary!;
    t.equal(s2.previous, first.summary!.name, 'incremental against the first');
    t.ok(s2.totals.linkedBytes > 0, `unchanged files hard-linked (${s2.totals.linkedBytes} bytes linked, ${s2.totals.copiedBytes} copied)`);
    const dir = join(lab.host('backup').disk, 'backups', s2.name);
    const linked = filesUnder(dir).filter((f) => f.endsWith('.ldb') || f.endsWith('.sst')).filter((f) => statSync(join(dir, f)).nlink > 1);
    t.ok(linked.length > 0, `table files shared with the first backup (${linked.length} with more than one link)`);

    // Restore the second backup onto four other hosts, the original still running.
    const rcoordHost = lab.host('rcoord');
    cpSync(join(dir, 'coordinator.bin'), join(rcoordHost.disk, 'coordinator.bin'));
    const restored = await labCoordinator(t, rcoordHost, { args: ['--restore', `${labDisk}/coordinator.bin`] });
    const copied = s2.servers.map((s) => s.serverId);
    const daemonHosts: LabHost[] = [];
    for (const [i, serverId] of copied.entries()) {
      const host = lab.host(`r${i + 1}`);
      cpSync(join(dir, serverId), join(host.disk, 'daemon'), { recursive: true });
      await labDaemon(t, host, restored.address);
      daemonHosts.push(host);
    }
    const client = cluster.client;
    for (const id of s2.skipped) t.equal((await client.kv(t, ['server-forget', id, '-c', restored.address])).code, 0, `forgot ${id}`);
    const rw = await client.kv(t, ['set-read-write', '-c', restored.address]);
    t.equal(rw.code, 0, rw.stderr);
    const restoredConfig = await client.showConfig(t, restored.address);
    t.ok(restoredConfig.servers.filter((s) => s.state === 'available').every((s) => daemonHosts.some((h) => s.address.startsWith(h.v4))),
      'the restored servers serve from their new hosts');
    // Every write acknowledged before the backup is in the restored cluster: its reads continue the history.
    history.push(...(await finalReads(t, client, restored.address, space, keys)));
    const checked = check(history);
    t.ok(checked.verdict.ok, `the restored cluster reads every acknowledged write: ${checked.verdict.summary}`);
    t.ok(checked.okWrites > 20, `acknowledged writes (${checked.okWrites})`);
    const write = await client.kv(t, ['put', space, 'after-restore', '{"v":1}', '-c', restored.address]);
    t.equal(write.code, 0, 'the restored cluster takes writes');
  });

  t.test('a backup host cut from a daemon host mid-copy fails cleanly, and the next backup succeeds', async (t) => {
    const { lab, cluster } = await startBackupLab(t);
    await addSpace(t, cluster);
    // Enough data that a copy at 100 KB/s takes a while.
    await putBig(t, cluster, 5);
    const ioTimeoutSeconds = 3;
    const proc = lab.host('backup').spawnKv(t, [
      'backup-manager', '--backup-dir', `${labDisk}/backups`, '--coordinator', cluster.coordinator.address,
      '--rsh', lab.rsh, '--io-timeout-seconds', String(ioTimeoutSeconds), '--json',
    ], { PATH: slowRsyncPath(t), KV_LOG_LEVEL: 'debug' });
    // A daemon whose snapshot is being copied (with one replica per partition, one may be skipped).
    const copying = await proc.waitForLog('copying server', 60_000);
    const victim = cluster.daemons.find((d) => d.serverId === copying.serverId)!;
    await waitFor('the copy to be under way', () => proc.logs.some((l) => l.msg === 'copying started'), 30_000, 20);
    await lab.cut('backup', victim.host.name);
    const cutAt = now();
    const code = await proc.waitForExit(60_000);
    const failMs = now() - cutAt;
    t.not(code, 0, 'the backup fails');
    t.match(proc.stderr, /BACKUP_FAILED/, `it says why: ${proc.stderr.split('\n').filter((l) => !l.startsWith('{')).join(' ').slice(0, 400)}`);
    t.ok(failMs < (ioTimeoutSeconds + 10) * 1000, `within about rsync's --timeout (${Math.round(failMs)} ms)`);
    const backups = join(lab.host('backup').disk, 'backups');
    t.same(readdirSync(backups).filter((n) => n.endsWith('.partial')), [], 'no partial directory left');
    const snapshots = await cluster.client.kv(t, ['list-snapshots', '--json', '-c', cluster.coordinator.address]);
    t.same((JSON.parse(snapshots.stdout) as { snapshots: unknown[] }).snapshots, [], 'no snapshot left on any daemon');
    const put = await cluster.client.kv(t, ['put', space, 'after', '{"v":1}', '-c', cluster.coordinator.address, '--timeout-ms', '5000']);
    t.equal(put.code, 0, 'the cluster is not frozen: a write succeeds during the cut');
    await lab.heal('backup', victim.host.name);
    const next = await backup(t, lab, cluster);
    t.equal(next.code, 0, next.code === 0 ? 'the next backup succeeds (the lock was released)' : next.stderr.slice(-500));
    const verify = await lab.host('backup').kv(t, ['verify-backup', `${labDisk}/backups/${next.summary?.name}`]);
    t.equal(verify.code, 0, verify.code === 0 ? 'verify-backup: intact' : verify.stdout);
    t.comment(`figures: backup host cut from a daemon host mid-copy (--io-timeout-seconds ${ioTimeoutSeconds}): backup failed ${Math.round(failMs)} ms after the cut`);
  });

  t.test('IPv6 only: the cluster (coordinator on :: with --advertise) and a backup over ssh', async (t) => {
    const { lab, cluster } = await startBackupLab(t, [], { family: 'ipv6', coordinatorArgs: ['--listen', '::', '--advertise', '[fd00:13::2]'] });
    t.equal(cluster.coordinator.address, `[fd00:13::2]:1982`, 'the coordinator gives its advertised address');
    t.equal((await cluster.coordinator.proc.waitForLog('listening')).address, '[::]:1982', 'while it listens on the wildcard');
    t.ok(cluster.daemons.every((d) => d.address.startsWith('[fd00:13::')), 'daemons on IPv6 addresses');
    await addSpace(t, cluster);
    const history = await startWorkload(t, cluster.client, cluster.coordinator.address, { space, keys, seconds: 3 }).finished();
    const run = await backup(t, lab, cluster);
    t.equal(run.code, 0, run.code === 0 ? 'the backup succeeds' : run.stderr.slice(-1500));
    t.ok(run.summary!.servers.every((s) => s.host.startsWith('fd00:13::')), 'copied from IPv6 hosts');
    const verify = await lab.host('backup').kv(t, ['verify-backup', `${labDisk}/backups/${run.summary!.name}`]);
    t.equal(verify.code, 0, verify.code === 0 ? 'verify-backup: intact' : verify.stdout);
    history.push(...(await finalReads(t, cluster.client, cluster.coordinator.address, space, keys)));
    const checked = check(history);
    t.ok(checked.verdict.ok && checked.okWrites > 20, `linearizable, ${checked.okWrites} acknowledged writes: ${checked.verdict.summary}`);
  });
}

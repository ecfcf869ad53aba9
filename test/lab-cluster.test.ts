// The cluster across hosts (test/helpers/lab.ts: network namespaces, one address and one disk each): a
// coordinator host, three daemon hosts and a client host running a recorded workload, checked for
// linearizability, every acknowledged write readable and every chain's replicas identical. Faults: the
// coordinator's host loses power and comes back; the coordinator and a daemon are cut from each other (silently)
// during writes, then healed. The times they take are printed as figures (bench/RESULTS.md, issue 13).
import t, { type Test } from 'tap';
import { join } from 'node:path';
import type { ClusterConfig } from '../shared/config.js';
import { Lab, labCertificates, labCluster, type LabCertificates, labCoordinator, labHeartbeats, labUnavailable, type LabCluster } from './helpers/lab.js';
import { check, finalReads, firstWriteAfter, startWorkload } from './helpers/lab-workload.js';
import { partitionContents } from './helpers/replicas.js';
import { messageLines, tempDir, waitFor, type KvProcess, type TestLike } from './helpers/cluster.js';
import { exitCodes } from '../cli/exit-codes.js';
import { backupFrozenMsMaxDefault } from '../shared/limits.js';
import { now } from './jepsen/worker.js';

const why = await labUnavailable();
const space = 'lab';
const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
/** At most this long per workload: each is stopped once its test has seen what it waits for. */
const workloadSecondsMax = 90;
const hosts = { coordinator: 'coord', daemons: ['d1', 'd2', 'd3'], client: 'client' };

/** Wall-clock ms of the first log line `msg` of `proc` at or after `since` (pino's `time`). */
const logTime = (proc: KvProcess, msg: string, since = 0, match: (line: Record<string, unknown>) => boolean = () => true) =>
  proc.logs.find((l) => l.msg === msg && Number(l.time) >= since && match(l));

/** Stops the daemons and compares the replicas of every chain, straight from their disks. */
async function replicasIdentical(t: TestLike & { equal: Function; ok: Function }, cluster: LabCluster, config: ClusterConfig) {
  for (const d of cluster.daemons) await d.proc.stop();
  const diskOf = new Map(cluster.daemons.map((d) => [d.serverId, join(d.host.disk, 'daemon')]));
  const s = config.spaces.find((x) => x.name === space)!;
  let compared = 0;
  for (const [partition, p] of s.partitions.entries()) {
    const contents = await Promise.all(p.chain.map((id) => partitionContents(diskOf.get(id)!, s.id, partition)));
    const [first, ...rest] = contents.map((m) => JSON.stringify([...m].sort()));
    for (const other of rest) if (other !== first) return t.ok(false, `partition ${partition}: replicas differ`);
    compared += p.chain.length > 1 ? 1 : 0;
  }
  t.equal(compared, s.partitions.length, 'every partition has two replicas, identical');
}

async function settledConfig(cluster: LabCluster): Promise<ClusterConfig> {
  return waitFor('every chain to be whole again (2 live replicas, no transfer)', async () => {
    const config = await cluster.client.showConfig(t, cluster.coordinator.address, cluster.clientArgs);
    const up = new Set(config.servers.filter((s) => s.state === 'available').map((s) => s.id));
    const s = config.spaces.find((x) => x.name === space)!;
    return s.partitions.every((p) => p.chain.length === 2 && p.chain.every((id) => up.has(id)) && !p.joining && !p.leaving) && config;
  }, 60_000, 250);
}

/**
 * The lab's usual cluster (a coordinator host, 3 daemon hosts, a client host) with the space made and its chains
 * whole; `options` may make what the processes need from the lab first (certificates).
 */
async function spaceCluster(t: Test, options: (lab: Lab) => Promise<Parameters<typeof labCluster>[3]> = async () => ({})): Promise<{ lab: Lab; cluster: LabCluster }> {
  const lab = await Lab.start(t, [hosts.coordinator, ...hosts.daemons, hosts.client]);
  const cluster = await labCluster(t, lab, hosts, await options(lab));
  const added = await cluster.client.kv(t, ['add-space', space, '--partitions', '6', '--tolerate', '1', '-c', cluster.coordinator.address, ...cluster.clientArgs]);
  t.equal(added.code, 0, added.stderr);
  await settledConfig(cluster);
  return { lab, cluster };
}

/**
 * A silent cut between two daemon hosts (both still reach the coordinator and the client) during a recorded
 * workload: one of the two is taken out of its chains on the other's report, writes go on, and after the heal it
 * serves again. With `tls`, every process runs with a certificate of the lab's CA (one per role, its hosts' addresses
 * in it), the workload with a client certificate; unauthenticated and client-role admin commands are refused.
 */
async function peerCut(t: Test, tls: boolean): Promise<void> {
  let certs: LabCertificates | undefined;
  const { lab, cluster } = await spaceCluster(t, async (made) => {
    if (!tls) return {};
    certs = await labCertificates(t, made);
    return { coordinatorArgs: certs.args('coordinator'), daemonArgs: certs.args('daemon'), clientArgs: certs.args('admin') };
  });
  if (certs) {
    const plain = await cluster.client.kv(t, ['show-config', '-c', cluster.coordinator.address, '--timeout-ms', '3000']);
    t.not(plain.code, 0, `a client without TLS gets nothing (exit ${plain.code})`);
    const asClient = await cluster.client.kv(t, ['rm-space', space, '-c', cluster.coordinator.address, ...certs.args('client')]);
    t.equal(asClient.code, exitCodes.forbidden, `a client certificate may not rm-space: ${messageLines(asClient.stderr).join(' ')}`);
    t.ok((await cluster.client.showConfig(t, cluster.coordinator.address, cluster.clientArgs)).spaces.some((x) => x.name === space), 'and the space is still there');
  }

  const [a, b] = cluster.daemons;
  let backupFigure = '';
  const workload = startWorkload(t, cluster.client, cluster.coordinator.address, { space, keys, seconds: workloadSecondsMax, ...(certs ? { tls: certs.files('client') } : {}) });
  await workload.recorded(1_000); // the baseline rate, before the cut
  await lab.cut(a!.host.name, b!.host.name);
  const cutAt = now();
  // A backup started with the cut: its freezes find the chains across it stalled until one daemon is taken out.
  const backupDir = tempDir(t, 'kv-lab-backup-');
  const backup = tls ? undefined : cluster.client.kv(t, ['backup', 'during-cut', '--json', '--out', backupDir, '-c', cluster.coordinator.address]);
  // Times are this process's (now() when a poll saw it, within 50 ms): other processes' clocks may be off by seconds.
  const takenOut = await waitFor('the coordinator to take one of the two out of its chains', () =>
    logTime(cluster.coordinator.proc, 'taking a daemon out of its chains: another cannot reach it'), 15_000, 50);
  const takenOutAt = now();
  const victim = String(takenOut.serverId);
  t.ok(victim === a!.serverId || victim === b!.serverId, 'one of the two cut daemons is taken out, not the third');
  // The cut lasts until the chains have gone on without the daemon taken out for a while: writes recorded after it.
  await waitFor('every chain to go on without the daemon taken out', async () => {
    const config = await cluster.client.showConfig(t, cluster.coordinator.address, cluster.clientArgs);
    return config.spaces.every((s) => s.partitions.every((p) => !p.chain.includes(victim) && p.joining?.server !== victim));
  }, 30_000, 100);
  await workload.recorded(workload.count() + 1_000);
  await lab.heal(a!.host.name, b!.host.name);
  const healedAt = now();
  await waitFor('the daemon taken out to be reached again', () =>
    logTime(cluster.coordinator.proc, 'a daemon cut off is reached again; it may serve again', 0), 20_000, 50);
  const backInAt = now();
  const config = await settledConfig(cluster);
  const wholeAt = now();

  if (backup) {
    const done = await backup;
    const failedLine = logTime(cluster.coordinator.proc, 'backup failed');
    const frozenTotalMs = done.code === 0 ? Number(JSON.parse(done.stdout).frozenTotalMs) : Number(failedLine?.frozenTotalMs);
    t.ok(done.code === 0 || done.code === exitCodes.failure, `the backup during the cut ends, done or failed cleanly (exit ${done.code}${done.code ? `: ${messageLines(done.stderr).join(' ')}` : ''})`);
    t.ok(frozenTotalMs <= backupFrozenMsMaxDefault, `and froze the cluster ${Math.round(frozenTotalMs)} ms in all, within ${backupFrozenMsMaxDefault} ms`);
    backupFigure = `; a backup started with the cut ${done.code === 0 ? 'succeeded' : 'failed'}, frozen ${Math.round(frozenTotalMs)} ms in all`;
    const left = await cluster.client.kv(t, ['list-snapshots', '--json', '-c', cluster.coordinator.address]);
    const { snapshots } = JSON.parse(left.stdout) as { snapshots: Array<{ name: string; sealed: boolean }> };
    t.ok(snapshots.every((s) => s.name === 'during-cut' && s.sealed && done.code === 0), `nothing but the backup's own sealed snapshots is left (${JSON.stringify(snapshots)})`);
    t.notOk((await cluster.client.showConfig(t, cluster.coordinator.address)).freeze, 'nothing left frozen');
  }
  const history = await workload.stop();
  const writes = history.filter((op) => op.outcome === 'ok' && op.kind !== 'get').map((op) => op.end).sort((x, y) => x - y);
  history.push(...(await finalReads(t, cluster.client, cluster.coordinator.address, space, keys, cluster.clientArgs)));
  const checked = check(history);
  t.ok(checked.verdict.ok, `linearizable: ${checked.verdict.summary}`);
  const cutW = await workload.onWorkerClock(cutAt);
  const takenOutW = await workload.onWorkerClock(takenOutAt);
  const healedW = await workload.onWorkerClock(healedAt);
  const rate = (from: number, to: number) => writes.filter((end) => end >= from && end < to).length / ((to - from) / 1000);
  const before = rate(cutW - 3_000, cutW);
  const cut = rate(cutW, healedW);
  const repaired = rate(takenOutW + 500, healedW);
  let stall = 0;
  for (let i = 1; i < writes.length; i++) if (writes[i]! > cutW && writes[i - 1]! < healedW) stall = Math.max(stall, writes[i]! - Math.max(writes[i - 1]!, cutW));
  t.ok(stall < healedW - cutW - 2_000, `writes were acknowledged during the cut, not only after it (longest gap ${Math.round(stall)} ms of a ${Math.round(healedW - cutW)} ms cut)`);
  t.ok(repaired > before * 0.3, `once repaired, writes run at a useful rate (${repaired.toFixed(0)}/s vs ${before.toFixed(0)}/s before the cut)`);
  t.ok(config.servers.filter((s) => s.state === 'available').length === 3, 'all three daemons available again after the heal');
  t.comment(`figures: daemon-daemon cut${tls ? ' with TLS' : ''} (peer silence 2000 ms): taken out ${Math.round(takenOutAt - cutAt)} ms after the cut; ` +
    `longest gap between acknowledged writes ${Math.round(stall)} ms; writes/s before ${before.toFixed(0)}, during the whole cut ${cut.toFixed(0)}, ` +
    `after the take-out ${repaired.toFixed(0)}; heal to reached again ${Math.round(backInAt - healedAt)} ms, to every chain whole ` +
    `${Math.round(wholeAt - healedAt)} ms; ${writes.length} writes acknowledged in all, ${writes.filter((end) => end >= cutW && end < healedW).length} during the ${Math.round(healedAt - cutAt)} ms cut${backupFigure}`);
  await replicasIdentical(t, cluster, config);
  }

if (why) {
  t.plan(0, `lab tests skipped: ${why}`);
} else {
  t.test('the coordinator host loses power during writes and comes back: daemons re-register by themselves', async (t) => {
    const { lab, cluster } = await spaceCluster(t);
    t.ok(cluster.daemons.every((d) => d.address.startsWith('10.13.0.')), 'daemons listen on their hosts\' addresses');

    const workload = startWorkload(t, cluster.client, cluster.coordinator.address, { space, keys, seconds: workloadSecondsMax });
    await workload.recorded(500);
    // From the moment the host is cut off: powerLoss returns once its processes are gone and their output read,
    // which on a loaded machine can take longer than the daemons take to notice the silence.
    const lostAt = now();
    await lab.powerLoss(hosts.coordinator);
    // Down for longer than the heartbeat timeout: daemons notice the silence and try to register anew.
    await waitFor('every daemon to notice the silent coordinator', () =>
      cluster.daemons.every((d) => logTime(d.proc, 'the coordinator answers no lease requests; dropping the session to register anew', lostAt)),
    15_000, 50);
    const noticedAt = Math.max(...cluster.daemons.map((d) => Number(logTime(d.proc, 'the coordinator answers no lease requests; dropping the session to register anew', lostAt)!.time)));
    await lab.powerOn(hosts.coordinator);
    const poweredOnAt = now();
    const coordinator = await labCoordinator(t, cluster.coordinatorHost);
    const listening = await coordinator.proc.waitForLog('listening');
    const restartedAt = Number(listening.time);
    await waitFor('every daemon to register with the new coordinator', () =>
      cluster.daemons.every((d) => logTime(coordinator.proc, 'daemon registered', 0, (l) => l.serverId === d.serverId)), 30_000, 50);
    const registeredAt = Math.max(...cluster.daemons.map((d) => Number(logTime(coordinator.proc, 'daemon registered', 0, (l) => l.serverId === d.serverId)!.time)));

    // Wall-clock times (pino's) against the worker's: comparable within the clock offsets, far below a restart.
    await waitFor('a write acknowledged after the restart', () => firstWriteAfter(workload.sofar(), restartedAt), 30_000, 100);
    const history = await workload.stop();
    history.push(...(await finalReads(t, cluster.client, coordinator.address, space, keys)));
    const firstWrite = firstWriteAfter(history.filter((op) => op.process !== 9_999), restartedAt);
    t.ok(firstWrite, 'a write succeeded after the restart');
    const checked = check(history);
    t.ok(checked.verdict.ok, `linearizable: ${checked.verdict.summary}`);
    t.ok(checked.okWrites > 50, `acknowledged writes (${checked.okWrites})`);
    // Chains do not change while the coordinator is away, so writes go on; reads stop once leases run out.
    const ok = history.filter((op) => op.outcome === 'ok' && op.process !== 9_999);
    const writesWhileDown = ok.filter((op) => op.kind !== 'get' && op.end > lostAt && op.end < restartedAt).length;
    const firstRead = ok.filter((op) => op.kind === 'get' && op.end >= restartedAt).sort((a, b) => a.end - b.end)[0];
    const longest = Math.max(...ok.map((op) => op.end - op.start));
    t.comment(`figures: coordinator power loss: daemons noticed ${Math.round(noticedAt - lostAt)} ms after it; ` +
      `power on to the new coordinator listening ${Math.round(restartedAt - poweredOnAt)} ms (starting node); ` +
      `from listening to all 3 registered ${Math.round(registeredAt - restartedAt)} ms; ` +
      `from listening to the first acknowledged write ${firstWrite ? Math.round(firstWrite.end - restartedAt) : '-'} ms; ` +
      `from listening to the first read answered ${firstRead ? Math.round(firstRead.end - restartedAt) : '-'} ms; ` +
      `${writesWhileDown} writes acknowledged while it was down; longest acknowledged operation ${Math.round(longest)} ms; ` +
      `${checked.ops} ops, ${checked.ok} ok`);
    await replicasIdentical(t, cluster, await settledConfig({ ...cluster, coordinator }));
  });

  t.test('a silent cut between the coordinator and a daemon during writes, then healed', async (t) => {
    const { lab, cluster } = await spaceCluster(t);
    const [victim] = cluster.daemons;
    const workload = startWorkload(t, cluster.client, cluster.coordinator.address, { space, keys, seconds: workloadSecondsMax });
    await workload.recorded(500);
    await lab.cut(hosts.coordinator, victim!.host.name);
    const cutAt = now();
    const declared = await waitFor('the coordinator to declare the cut daemon not available', () =>
      logTime(cluster.coordinator.proc, 'daemon missed its heartbeats', cutAt, (l) => l.serverId === victim!.serverId), 15_000, 50);
    const leaseLapsed = await waitFor('the cut daemon to drop its coordinator session', () =>
      logTime(victim!.proc, 'the coordinator answers no lease requests; dropping the session to register anew', cutAt), 15_000, 50);
    // The cut lasts until the others carry on without the daemon: no chain holds it any more.
    await waitFor('every chain to go on without the cut daemon', async () => {
      const config = await cluster.client.showConfig(t, cluster.coordinator.address);
      return config.spaces.every((s) => s.partitions.every((p) => !p.chain.includes(victim!.serverId)));
    }, 30_000, 100);
    const carriedOnAt = now();
    await lab.heal(hosts.coordinator, victim!.host.name);
    const healedAt = now();
    const back = await waitFor('the daemon to register again after the heal', () =>
      logTime(cluster.coordinator.proc, 'daemon registered', healedAt, (l) => l.serverId === victim!.serverId), 30_000, 50);
    const config = await settledConfig(cluster);
    const wholeAt = now();

    const history = await workload.stop();
    history.push(...(await finalReads(t, cluster.client, cluster.coordinator.address, space, keys)));
    const checked = check(history);
    t.ok(checked.verdict.ok, `linearizable: ${checked.verdict.summary}`);
    t.ok(checked.okWrites > 50, `acknowledged writes (${checked.okWrites})`);
    t.ok(config.servers.filter((s) => s.state === 'available').length === 3, 'all three daemons available again');
    t.comment(`figures: coordinator-daemon cut (heartbeat timeout ${labHeartbeats.timeoutMs} ms): declared dead ` +
      `${Math.round(Number(declared.time) - cutAt)} ms after the cut; the daemon dropped its session ` +
      `${Math.round(Number(leaseLapsed.time) - cutAt)} ms after; chains without it ${Math.round(carriedOnAt - cutAt)} ms after (polled); heal to registered ${Math.round(Number(back.time) - healedAt)} ms; ` +
      `heal to every chain whole ${Math.round(wholeAt - healedAt)} ms (polled every 250 ms); ${checked.ops} ops, ${checked.ok} ok`);
    await replicasIdentical(t, cluster, config);
  });

  t.test('a silent cut between the coordinator and a daemon as a backup starts: the backup goes on without it, nothing left behind', async (t) => {
    const { lab, cluster } = await spaceCluster(t);
    const [victim] = cluster.daemons;
    const workload = startWorkload(t, cluster.client, cluster.coordinator.address, { space, keys, seconds: workloadSecondsMax });
    await workload.recorded(500);
    await lab.cut(hosts.coordinator, victim!.host.name);
    const out = tempDir(t, 'kv-lab-backup-');
    const backup = await cluster.client.kv(t, ['backup', 'coordinator-cut', '--json', '--out', out, '-c', cluster.coordinator.address]);
    t.equal(backup.code, 0, `the backup succeeds without the daemon it cannot reach (${messageLines(backup.stderr).join(' ')})`);
    const result = JSON.parse(backup.stdout) as { frozenTotalMs: number; attempts: number; servers: Array<{ serverId: string }> };
    t.notOk(result.servers.some((s) => s.serverId === victim!.serverId), 'the cut daemon is not in it');
    t.ok(result.frozenTotalMs <= backupFrozenMsMaxDefault, `frozen ${Math.round(result.frozenTotalMs)} ms in all over ${result.attempts} attempt(s)`);
    await lab.heal(hosts.coordinator, victim!.host.name);
    await cluster.waitForAvailable(3);
    const config = await settledConfig(cluster);
    t.notOk(config.freeze, 'nothing left frozen');
    const listed = await cluster.client.kv(t, ['list-snapshots', '--json', '-c', cluster.coordinator.address]);
    const { snapshots } = JSON.parse(listed.stdout) as { snapshots: Array<{ serverId: string; name: string; sealed: boolean }> };
    t.ok(snapshots.length > 0 && snapshots.every((s) => s.name === 'coordinator-cut' && s.sealed && s.serverId !== victim!.serverId),
      `only the backup's sealed snapshots are left, none on the cut daemon (${JSON.stringify(snapshots)})`);
    t.equal((await cluster.client.kv(t, ['backup-release', 'coordinator-cut', '-c', cluster.coordinator.address])).code, 0, 'released');
    const again = await cluster.client.kv(t, ['backup', 'after-the-cut', '--json', '--out', out, '-c', cluster.coordinator.address]);
    t.equal(again.code, 0, 'a backup after the heal succeeds');
    t.ok((JSON.parse(again.stdout) as typeof result).servers.some((s) => s.serverId === victim!.serverId), 'and has the daemon back in it');
    await cluster.client.kv(t, ['backup-release', 'after-the-cut', '-c', cluster.coordinator.address]);
    const history = await workload.stop();
    history.push(...(await finalReads(t, cluster.client, cluster.coordinator.address, space, keys)));
    const checked = check(history);
    t.ok(checked.verdict.ok, `linearizable: ${checked.verdict.summary}`);
    await replicasIdentical(t, cluster, await settledConfig(cluster));
  });

  t.test('a silent cut between two daemons that both still reach the coordinator, during writes', (t) => peerCut(t, false));
  t.test('the same with TLS and authentication on: mutual TLS everywhere, a client certificate, refusals', (t) => peerCut(t, true));
}

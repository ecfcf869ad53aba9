// Replicated coordinators (3, on a real 3-member etcd, lease TTL 2 s) and 3 daemons under etcd faults: members
// killed one at a time (a follower, then the leader: quorum kept), two of three killed (quorum lost), the leader's
// etcd traffic black-holed, and a coordinator that reaches no etcd at all. Config changes need etcd; writes do not;
// reads need a read lease, which needs a leader, which needs etcd. Every workload is recorded and checked for
// linearizability. A fresh etcd per test where members die.
import t, { type Test } from 'tap';
import type { ClusterConfig } from '../shared/config.js';
import { Client } from '../shared/client.js';
import { asKvError } from '../shared/errors.js';
import { exitCodeOf, exitCodes } from '../cli/exit-codes.js';
import { startEtcd } from './helpers/etcd.js';
import { etcdProxies } from './helpers/black-hole-proxy.js';
import { askLeader, coordinatorArgs, replicatedHeartbeats, startReplicated, type ReplicatedCluster } from './helpers/replicated.js';
import { check, finalReads, startWorkload, thisHost, type Workload } from './helpers/lab-workload.js';
import { GaveUp, closedAddress, kv, messageLines, processStartMs, runKvProcess, waitFor, type KvProcess } from './helpers/cluster.js';
import type { Op } from './jepsen/history.js';
import { now } from './jepsen/worker.js';

const ttlSeconds = 2;
const ttlMs = ttlSeconds * 1000;
const space = 'faults';
const keys = Array.from({ length: 4 }, (_, i) => `k${i}`);
/** What starting the kv command costs on top of its --timeout-ms on a loaded two-core machine. */
const commandStartMsMax = 5_000;
/** The workloads' per-operation deadline (lab-workload.ts default), and how late an operation may end past it. */
const workloadTimeoutMs = 3_000;
const deadlineSlackMs = 500;
/** How long a workload may run at most: each is stopped once its test has seen what it waits for. */
const workloadSecondsMax = 90;

const elected = (proc: KvProcess) => proc.logs.filter((l) => l.msg === 'won the leader election').length;
const electionsOf = (cluster: ReplicatedCluster) => cluster.coordinators.reduce((n, c) => n + elected(c.proc), 0);

async function timed<T>(work: () => Promise<T>): Promise<T & { tookMs: number }> {
  const startedAt = performance.now();
  const done = await work();
  return { ...done, tookMs: performance.now() - startedAt };
}

async function addSpace(t: Test, cluster: ReplicatedCluster, name: string, timeoutMs = 15_000) {
  const done = await timed(() => kv(t, ['add-space', name, '--partitions', '4', '--tolerate', '1', '-c', cluster.addresses, '--timeout-ms', String(timeoutMs)]));
  return { ...done, said: messageLines(done.stderr).join(' ') };
}

/** The config once every partition of `space` has two live replicas and nothing moves. */
async function settled(cluster: ReplicatedCluster): Promise<ClusterConfig> {
  const admin = await cluster.client({ subscribe: false });
  return waitFor('every chain of the space to be whole (2 live replicas, no transfer)', async () => {
    const config = await admin.showConfig();
    const up = new Set(config.servers.filter((s) => s.state === 'available').map((s) => s.id));
    const s = config.spaces.find((x) => x.name === space);
    return s !== undefined && s.partitions.every((p) => p.chain.length === 2 && p.chain.every((id) => up.has(id)) && !p.joining && !p.leaving) && config;
  }, 60_000, 100);
}

/** A cluster with the space made and whole, and a recorded workload on it that has begun. */
async function withWorkload(t: Test, cluster: ReplicatedCluster): Promise<Workload> {
  // Through the library: each kv command costs a node start (seconds on a loaded machine); the faults use kv.
  const admin = await cluster.client({ subscribe: false });
  await admin.addSpace(space, { partitions: 4, tolerate: 1 });
  await settled(cluster);
  const workload = startWorkload(t, thisHost, cluster.addresses, { space, keys, seconds: workloadSecondsMax });
  await workload.recorded(200);
  return workload;
}

/**
 * The workloads stopped, their history with the final reads, checked. Every workload here runs until this stops
 * it (`workloadSecondsMax` is only a bound): a fault's steps take as long as they take on a loaded machine.
 */
async function checked(t: Test, cluster: ReplicatedCluster, ...workloads: Workload[]) {
  const history = (await Promise.all(workloads.map((w) => w.stop()))).flat();
  history.push(...(await finalReads(t, thisHost, cluster.addresses, space, keys)));
  const result = check(history);
  t.ok(result.verdict.ok, `linearizable: ${result.verdict.summary}`);
  return { history, result };
}

const isAckedWrite = (op: Op) => op.outcome === 'ok' && op.kind !== 'get' && !(op.kind === 'cond_put' && op.result === false);

t.test('an etcd follower killed and restarted, then the etcd leader killed: at most one failover, changes work', async (t) => {
  const cluster = await startReplicated(t, { coordinators: 3, daemons: 3, ttlSeconds });
  const workload = await withWorkload(t, cluster);
  const { etcd } = cluster;

  const etcdLeader = await etcd.leader();
  const follower = etcd.members.find((m) => m !== etcdLeader)!;
  await follower.kill();
  const afterFollower = await addSpace(t, cluster, 'after-follower-killed');
  t.equal(afterFollower.code, 0, `a config change works with a follower dead: ${afterFollower.said}`);
  await follower.start();
  await waitFor(`etcd member ${follower.name} to be healthy again`, async () => {
    const health = await fetch(`${follower.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
    return health.ok && ((await health.json()) as { health?: string }).health === 'true';
  }, 20_000, 100);
  t.equal(electionsOf(cluster) - 1, 0, 'losing an etcd follower moves no coordinator leadership');

  const secondLeader = await etcd.leader();
  const workCount = workload.count();
  await secondLeader.kill();
  // A coordinator failover may follow (its keep-alives fail while etcd elects), and then every daemon registers
  // again: a change refused meanwhile for want of daemons says so, and goes through once they are back.
  // A change cut off by the step-down (CONNECTION_LOST) may have been made: then the retry finds the space there.
  let afterLeader = await addSpace(t, cluster, 'after-leader-killed');
  let retried = false;
  await waitFor(() => `a config change to go through after the etcd leader died (last: ${afterLeader.said})`, async () => {
    if (afterLeader.code === 0 || (retried && /SPACE_EXISTS/.test(afterLeader.said))) return true;
    if (!/began leading moments ago|CONNECTION_LOST|NOT_LEADER|no leading coordinator/.test(afterLeader.said)) throw new GaveUp(`refused for another reason: ${afterLeader.said}`);
    retried = true;
    afterLeader = await addSpace(t, cluster, 'after-leader-killed');
    return afterLeader.code === 0 || /SPACE_EXISTS/.test(afterLeader.said);
  }, 60_000, 200);
  t.pass(`a config change works with the etcd leader dead (2 of 3 left)${retried ? ', once the daemons were back' : ''}`);
  await workload.recorded(workCount + 300);
  const leading = await cluster.leader();
  const failovers = electionsOf(cluster) - 1;
  t.ok(failovers <= 1, `at most one coordinator failover across both kills (${failovers}; coordinator ${leading} leads)`);
  t.comment(`coordinator failovers: ${failovers}; kv add-space took ${Math.round(afterFollower.tookMs)} ms with a follower dead, ${Math.round(afterLeader.tookMs)} ms after the etcd leader died (node start included)`);

  const { result } = await checked(t, cluster, workload);
  t.ok(result.okWrites > 0, `writes were acknowledged (${result.okWrites} of ${result.ops} operations)`);
});

t.test('two of three etcd members killed: config changes stop, writes go on, reads are refused cleanly; back once restarted', async (t) => {
  const cluster = await startReplicated(t, { coordinators: 3, daemons: 3, ttlSeconds });
  const workload = await withWorkload(t, cluster);
  // A refused read holds its thread for the read's whole deadline (the client retries it in case a lease comes):
  // with reads in the mix every thread of a workload soon waits on one. Writes are watched on threads of their own.
  const writers = startWorkload(t, thisHost, cluster.addresses, { space, keys, seconds: workloadSecondsMax, threads: 2, processBase: 200, seed: 2, mix: { put: 1, get: 0, cond_put: 1, add: 1 } });
  await writers.recorded(100);
  const { etcd } = cluster;
  const leader = cluster.coordinators[await cluster.leader()]!;

  const startMs = (await timed(() => kv(t, ['--version']))).tookMs; // what node's start costs a kv command now
  const etcdLeader = await etcd.leader();
  const killed = etcd.members.filter((m) => m !== etcdLeader);
  const killedAt = now();
  const killedWall = Date.now(); // pino's clock, for log lines
  await Promise.all(killed.map((m) => m.kill()));

  // What kv add-space does, timed here (a kv command's own time hides under node's start on a loaded machine),
  // beside the command itself: the leader still leads for a moment, takes the change, and cannot save it.
  const changeTimeoutMs = 4_000;
  const [{ error: direct, tookMs: directMs }, refused] = await Promise.all([
    timed(() => Client.connect(cluster.addresses, { subscribe: false, timeoutMs: changeTimeoutMs }).then(async (client) => {
      try {
        return await client.addSpace('without-quorum', { partitions: 4, tolerate: 1 }).then(() => ({ error: undefined }), (error: unknown) => ({ error: asKvError(error) }));
      } finally {
        await client.close();
      }
    }, (error: unknown) => ({ error: asKvError(error) }))),
    addSpace(t, cluster, 'without-quorum-cli', changeTimeoutMs),
  ]);
  t.ok(direct && exitCodeOf(direct.code) === exitCodes.unavailable, `a config change without an etcd quorum fails (${direct?.code}: ${direct?.message})`);
  t.ok(directMs <= changeTimeoutMs + deadlineSlackMs, `within its ${changeTimeoutMs} ms deadline (${Math.round(directMs)} ms)`);
  t.equal(refused.code, exitCodes.unavailable, `kv add-space without an etcd quorum exits ${exitCodes.unavailable}: ${refused.said}`);
  t.match(refused.said, /^kv: .*\((UNAVAILABLE|TIMEOUT|NOT_LEADER|CONNECTION_LOST)\)$/, 'with one line that says why');
  t.ok(refused.tookMs - startMs <= changeTimeoutMs + commandStartMsMax,
    `within its --timeout-ms ${changeTimeoutMs} (took ${Math.round(refused.tookMs)} ms; a bare kv --version took ${Math.round(startMs)} ms)`);

  const steppedDown = await leader.proc.waitForLog('stepped down: no longer the leader', 10_000);
  const steppedDownMs = Number(steppedDown.time) - killedWall;
  // Reads need a read lease, renewed by the leader: none after the step-down, so they lapse a heartbeat timeout on.
  const readsEndBy = killedAt + ttlMs + replicatedHeartbeats.timeoutMs;
  const killedW = await workload.onWorkerClock(killedAt);
  const readsEndByW = await workload.onWorkerClock(readsEndBy);
  await waitFor('reads to be refused, and the outage to last 4 s past that', () => {
    const ops = workload.sofar();
    return ops.some((op) => op.kind === 'get' && op.outcome !== 'ok' && op.start >= readsEndByW) && ops.some((op) => op.start >= readsEndByW + 4_000);
  }, 30_000, 100);
  const restartedAt = now();
  await Promise.all(killed.map((m) => m.start()));
  const restartedW = await workload.onWorkerClock(restartedAt);

  const leading = await cluster.leader(30_000);
  const ledMs = now() - restartedAt;
  // The new leader places nothing until the daemons have registered with it again (no reshuffle on failover).
  await cluster.waitForAvailable(3);
  t.comment(`after the restart coordinator ${leading} leads ${Math.round(ledMs)} ms after the members were back, every daemon registered with it after ${Math.round(now() - restartedAt)} ms`);
  await waitFor('reads to succeed again', () => workload.sofar().some((op) => op.kind === 'get' && op.outcome === 'ok' && op.start >= restartedW), 30_000, 100);
  t.pass('reads are served again');
  const again = await addSpace(t, cluster, 'quorum-back');
  t.equal(again.code, 0, `config changes work again: ${again.said}`);
  const { history } = await checked(t, cluster, workload, writers);

  const during = history.filter((op) => op.start >= killedW && op.end <= restartedW);
  const writeEnds = during.filter(isAckedWrite).map((op) => op.end);
  const windows: number[] = [];
  for (let from = killedW; from + 1_000 <= restartedW; from += 1_000) windows.push(writeEnds.filter((end) => end >= from && end < from + 1_000).length);
  t.ok(windows.length >= 5, `the outage lasted ${windows.length} whole seconds`);
  t.ok(windows.every((n) => n > 0), `writes were acknowledged in every second of the outage (${windows.join(', ')})`);

  const reads = during.filter((op) => op.kind === 'get');
  const failedReads = reads.filter((op) => op.outcome !== 'ok');
  const lastOk = Math.max(killedW, ...reads.filter((op) => op.outcome === 'ok').map((op) => op.end));
  const firstRefused = Math.min(...failedReads.map((op) => op.start));
  t.ok(failedReads.length > 0, 'reads were refused during the outage');
  t.same([...new Set(failedReads.map((op) => op.error))], ['UNAVAILABLE'], 'every refused read was refused with UNAVAILABLE');
  const slowest = Math.max(...failedReads.map((op) => op.end - op.start));
  t.ok(slowest <= workloadTimeoutMs + deadlineSlackMs, `a refused read took no longer than its ${workloadTimeoutMs} ms deadline (slowest ${Math.round(slowest)} ms)`);
  t.notOk(reads.some((op) => op.outcome === 'ok' && op.start >= readsEndByW), `no read served once every lease had lapsed (${ttlMs + replicatedHeartbeats.timeoutMs} ms after the kill)`);
  t.comment(`quorum lost: a config change failed after ${Math.round(directMs)} ms (${direct?.code}); the leader stepped down ${Math.round(steppedDownMs)} ms after the kill (${String(steppedDown.why)}); the last read served ended ${Math.round(lastOk - killedW)} ms after it, ` +
    `the first refused began ${Math.round(firstRefused - killedW)} ms after it (${failedReads.length} of ${reads.length} reads refused); writes per second: ${windows.join(', ')}`);
});

t.test("black-holed etcd traffic from the leader: it steps down by its deadline, another leads, and it rejoins as a follower", async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.close());
  const proxies = await Promise.all([0, 1, 2].map(() => etcdProxies(etcd.endpoints)));
  t.teardown(() => Promise.all(proxies.map((p) => p.close())));
  const cluster = await startReplicated(t, { coordinators: 3, daemons: 3, ttlSeconds, etcd, endpointsOf: (i) => proxies[i]!.urls });
  const workload = await withWorkload(t, cluster);
  const first = await cluster.leader();
  const old = cluster.coordinators[first]!;
  const oldEpoch = (await askLeader(old.address))!.epoch!;

  const linesBefore = old.proc.logs.length;
  const cutAt = Date.now();
  const cutW = await workload.onWorkerClock(now());
  proxies[first]!.blackHole();
  const steppedDown = await old.proc.waitForLog('stepped down: no longer the leader', 10_000);
  const steppedDownMs = Number(steppedDown.time) - cutAt;
  t.ok(steppedDownMs <= ttlMs, `the cut-off leader stepped down ${steppedDownMs} ms after the black-hole (TTL ${ttlMs} ms)`);
  t.match(steppedDown.why, /lease ran out/, 'by its own deadline');
  const after = old.proc.logs.slice(linesBefore);
  const stepIndex = after.findIndex((l) => l.msg === 'stepped down: no longer the leader');
  const errorIndex = after.findIndex((l) => l.msg === 'cannot reach etcd; retrying');
  t.ok(errorIndex === -1 || errorIndex > stepIndex, 'no etcd call had failed before it stepped down');

  const next = await cluster.leader();
  t.not(next, first, `another coordinator (${next}) leads`);
  const nextInfo = (await askLeader(cluster.coordinators[next]!.address))!;
  t.ok(nextInfo.epoch! > oldEpoch, `with a higher epoch (${nextInfo.epoch} > ${oldEpoch})`);
  await cluster.waitForAvailable(3);
  t.pass('every daemon registered with the new leader');
  const newLeaderAt = await workload.onWorkerClock(now());
  await workload.recorded(workload.count() + 200);
  const writesSince = workload.sofar().filter((op) => isAckedWrite(op) && op.start >= newLeaderAt).length;
  t.ok(writesSince > 0, `writes go on under the new leader (${writesSince} acknowledged since)`);

  const electionsBefore = electionsOf(cluster);
  proxies[first]!.heal();
  await old.proc.waitForLog('etcd reachable again', 20_000);
  const seen = await waitFor('the old leader to follow the new one', async () => {
    const info = await askLeader(old.address);
    return info && !info.leading && info.leader === cluster.coordinators[next]!.address && info;
  }, 20_000, 100);
  t.equal(seen.epoch, nextInfo.epoch, "it answers leading:false, naming the new leader and its epoch");
  const change = await addSpace(t, cluster, 'after-heal');
  t.equal(change.code, 0, `a config change works after the heal: ${change.said}`);
  t.equal(await cluster.leader(), next, 'the new leader still leads');
  t.equal((await askLeader(cluster.coordinators[next]!.address))!.epoch, nextInfo.epoch, 'in the same epoch');
  t.equal(electionsOf(cluster), electionsBefore, "the old leader's campaign after the heal won no election");
  t.notOk(cluster.coordinators[next]!.proc.logs.some((l) => l.msg === 'stepped down: no longer the leader'), 'and the new leader never stepped down');

  const { history } = await checked(t, cluster, workload);
  t.ok(history.some((op) => isAckedWrite(op) && op.start >= cutW), 'writes were acknowledged after the black-hole');
  t.comment(`black-holed leader stepped down ${steppedDownMs} ms after the cut (TTL ${ttlMs} ms)`);
});

t.test('a coordinator that reaches no etcd says so once, keeps running, follows nobody, and stops cleanly', async (t) => {
  const endpoints = await Promise.all([0, 1, 2].map(async () => `http://${await closedAddress()}`));
  const proc = runKvProcess(t, coordinatorArgs({ endpoints }, '/kv/unreachable', 0, ttlSeconds, replicatedHeartbeats, endpoints));
  const listening = await proc.waitForLog('listening', processStartMs);
  const startedAt = performance.now();
  const warned = await proc.waitForLog('cannot reach etcd; retrying', 5_000);
  t.comment(`'cannot reach etcd; retrying' ${Math.round(performance.now() - startedAt)} ms after listening: ${String(warned.err)}`);
  // Its campaign retries with a backoff (50 ms doubling to 2 s): several attempts in the next 4 s.
  const answers: Array<Awaited<ReturnType<typeof askLeader>>> = [];
  await waitFor('4 s of answers to `leader`', async () => {
    answers.push(await askLeader(String(listening.address)));
    return performance.now() - startedAt >= 4_000;
  }, 15_000, 200);
  t.ok(answers.length > 3 && answers.every((a) => a?.leading === false && a.leader === null), `it answers leader with leading:false throughout (${answers.length} answers)`);
  t.equal(proc.logs.filter((l) => l.msg === 'cannot reach etcd; retrying').length, 1, 'the outage is logged once, not per attempt');
  t.equal(proc.exitCode, undefined, 'it keeps running');
  t.equal(await proc.stop('SIGTERM', 15_000), 0, 'and exits 0 on SIGTERM');
});

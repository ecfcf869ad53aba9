// Coordinator failover on etcd with real processes: three coordinators (lease TTL 2 s), three daemons, a recorded
// workload. The leader is SIGKILLed (alone, or with a daemon), SIGSTOPped past its lease, and a backup of a
// local-store cluster is restored into etcd. What must hold: a new leader within TTL + 1 s, no reshuffle of chains,
// a linearizable history, a config history in etcd whose (epoch, version) only grows, and never two leaders acting.
import t, { type Test } from 'tap';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdClient } from '../coordinator/etcd-client.js';
import { Client } from '../shared/client.js';
import type { ClusterConfig } from '../shared/config.js';
import { Connection } from '../shared/connection.js';
import { asKvError } from '../shared/errors.js';
import { decodeState } from '../shared/state-file.js';
import { exitCodes } from '../cli/exit-codes.js';
import { backupManager } from './helpers/backup.js';
import { startEtcd, type EtcdCluster } from './helpers/etcd.js';
import { check, finalReads, firstWriteAfter, startWorkload, thisHost } from './helpers/lab-workload.js';
import { askLeader, coordinatorArgs, replicatedHeartbeats, startReplicated, type ReplicatedCluster } from './helpers/replicated.js';
import { kv, messageLines, processStartMs, runKvProcess, startCluster, startDaemon, tempDir, waitFor } from './helpers/cluster.js';
import { now } from './jepsen/worker.js';

const ttlSeconds = 2;
const electionMsMax = (ttlSeconds + 1) * 1000;
/** The new leader waits this long for daemons to register again before placement may drop one (coordinator.ts). */
const settleGraceMs = replicatedHeartbeats.timeoutMs + ttlSeconds * 1000;
const space = 's';
const keys = Array.from({ length: 4 }, (_, i) => `k${i}`);
// One etcd for every test (each cluster has its own prefix): starting three members takes seconds.
const etcd = await startEtcd();
t.teardown(() => etcd.close());

interface StoredConfig { revision: number; version: number; epoch: number; spaces: string[] }

/** Every config ever written under `prefix` (etcd keeps the whole history: nothing compacts it here), oldest first. */
async function configHistory(etcd: EtcdCluster, prefix: string): Promise<StoredConfig[]> {
  const client = new EtcdClient(etcd.endpoints);
  const key = `${prefix}/config`;
  const last = (await client.range(key)).kvs[0]?.modRevision ?? 0;
  const seen: StoredConfig[] = [];
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 10_000);
  try {
    await client.watch(key, { startRevision: 1, signal: stop.signal }, (events) => {
      for (const e of events) {
        if (e.type !== 'PUT') continue;
        const c = decodeState(e.kv.value, `etcd ${key}`);
        seen.push({ revision: e.kv.modRevision, version: c.version, epoch: c.epoch ?? 0, spaces: c.spaces.map((s) => s.name) });
      }
      if ((seen.at(-1)?.revision ?? 0) >= last) stop.abort();
    });
  } catch (error) {
    if (!stop.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
  }
  if ((seen.at(-1)?.revision ?? 0) < last) throw new Error(`the watch of ${key} did not reach revision ${last} within 10 s`);
  return seen;
}

/** (epoch, version) only grows along the stored history; returns what failed, if anything. */
function historyGrows(history: StoredConfig[]): string | undefined {
  for (let i = 1; i < history.length; i++) {
    const [a, b] = [history[i - 1]!, history[i]!];
    if (!(b.version > a.version)) return `version ${b.version} at revision ${b.revision} does not follow ${a.version}`;
    if (b.epoch < a.epoch) return `epoch ${b.epoch} at revision ${b.revision} is below ${a.epoch}`;
  }
  return undefined;
}

const chainsOf = (config: ClusterConfig, name = space) => config.spaces.find((s) => s.name === name)?.partitions.map((p) => p.chain);

/** An admin client that does not subscribe, closed at the test's end. */
async function admin(t: Test, cluster: ReplicatedCluster): Promise<Client> {
  const client = await Client.connect(cluster.addresses, { subscribe: false, timeoutMs: 10_000 });
  t.teardown(() => client.close());
  return client;
}

/** Waits until every daemon is available and the new leader's grace is over (placement has run by then). */
async function settled(probe: Client, count: number, wonAt: number): Promise<ClusterConfig> {
  return waitFor('every daemon available and the new leader\'s grace over', async () => {
    const config = await probe.showConfig().catch(() => undefined);
    const ready = config && config.servers.filter((s) => s.state === 'available').length === count && performance.now() - wonAt > settleGraceMs + 1_000;
    return ready ? config : undefined;
  }, 30_000, 100);
}

async function spaceCluster(t: Test): Promise<{ cluster: ReplicatedCluster; probe: Client }> {
  const cluster = await startReplicated(t, { coordinators: 3, daemons: 3, ttlSeconds, etcd });
  const probe = await admin(t, cluster);
  await probe.addSpace(space, { partitions: 6, tolerate: 1 });
  return { cluster, probe };
}

t.test('SIGKILL the leader under load: a new leader within TTL + 1 s, no reshuffle, linearizable, epochs only grow', async (t) => {
  const { cluster, probe } = await spaceCluster(t);
  const before = await probe.showConfig();
  const oldLeader = await cluster.leader();
  const oldEpoch = (await askLeader(cluster.coordinators[oldLeader]!.address))!.epoch!;
  const workload = startWorkload(t, thisHost, cluster.addresses, { space, keys, seconds: 8 });
  await workload.recorded(300);

  cluster.coordinators[oldLeader]!.proc.child.kill('SIGKILL');
  const killedAt = performance.now();
  const killedOnWorkerClock = await workload.onWorkerClock(now());
  const newLeader = await cluster.leader(10_000);
  const electedMs = performance.now() - killedAt;
  const wonAt = performance.now();
  t.not(newLeader, oldLeader, 'another coordinator leads');
  t.ok(electedMs <= electionMsMax, `a new leader ${Math.round(electedMs)} ms after the kill (at most ${electionMsMax})`);
  t.comment(`figure: SIGKILLed leader to a new leader (polled every 50 ms): ${Math.round(electedMs)} ms`);
  const newEpoch = (await askLeader(cluster.coordinators[newLeader]!.address))!.epoch!;
  t.ok(newEpoch > oldEpoch, `the new leader's epoch ${newEpoch} is above the old one's ${oldEpoch}`);

  // The first config change after the kill, through the list of coordinators (kv follows the leader).
  const added = await waitFor('kv add-space to succeed with the new leader', async () => {
    const r = await kv(t, ['add-space', 'after', '--partitions', '2', '-c', cluster.addresses, '--timeout-ms', '5000']);
    return r.code === 0 ? r : undefined;
  }, 30_000, 100);
  t.match(added.stdout, /added space after/);
  const changedMs = performance.now() - killedAt;
  t.comment(`figure: kill to the first config change accepted by the new leader: ${Math.round(changedMs)} ms (${Math.round(changedMs - electedMs)} ms after it was seen leading)`);

  const after = await settled(probe, 3, wonAt);
  t.same(chainsOf(after), chainsOf(before), 'every chain of the space is as before the failover (no reshuffle)');
  t.equal(after.epoch, newEpoch, 'the config is the new leader\'s');

  const history = await workload.finished();
  const firstWrite = firstWriteAfter(history, killedOnWorkerClock);
  t.ok(firstWrite, 'a write was acknowledged after the kill');
  history.push(...(await finalReads(t, thisHost, cluster.addresses, space, keys)));
  const checked = check(history);
  t.ok(checked.verdict.ok, `linearizable with final reads: ${checked.verdict.summary}`);
  t.ok(checked.okWrites > 50, `acknowledged writes: ${checked.okWrites} of ${checked.ops} ops`);
  t.comment(`figure: kill to the first acknowledged write: ${firstWrite ? Math.round(firstWrite.end - killedOnWorkerClock) : '-'} ms`);

  const stored = await configHistory(cluster.etcd, cluster.prefix);
  t.equal(historyGrows(stored), undefined, `the stored config history (${stored.length} writes) has strictly increasing versions and never decreasing epochs`);
  t.ok(stored.some((c) => c.epoch === oldEpoch) && stored.at(-1)!.epoch === newEpoch, 'it holds the old epoch, then ends with the new one');
});

t.test('SIGKILL the leader and a daemon together: writes resume, the daemon leaves its chains after the grace', async (t) => {
  const { cluster, probe } = await spaceCluster(t);
  const oldLeader = await cluster.leader();
  const workload = startWorkload(t, thisHost, cluster.addresses, { space, keys, seconds: 8 });
  await workload.recorded(300);
  const victim = cluster.daemons[0]!;

  cluster.coordinators[oldLeader]!.proc.child.kill('SIGKILL');
  victim.proc.child.kill('SIGKILL');
  const killedAt = performance.now();
  const killedOnWorkerClock = await workload.onWorkerClock(now());
  const newLeader = await cluster.leader(10_000);
  const wonAt = performance.now();
  t.not(newLeader, oldLeader, 'another coordinator leads');

  const gone = await waitFor('the dead daemon to leave every chain', async () => {
    const config = await probe.showConfig().catch(() => undefined);
    const out = config?.spaces.every((s) => s.partitions.every((p) => !p.chain.includes(victim.serverId) && p.joining?.server !== victim.serverId));
    return out ? config : undefined;
  }, 30_000, 100);
  const leftMs = performance.now() - wonAt;
  t.ok(leftMs >= settleGraceMs - 500, `it left ${Math.round(leftMs)} ms after the new leader was seen, not before its grace (${settleGraceMs} ms)`);
  t.ok(gone.spaces.every((s) => s.partitions.every((p) => p.chain.length >= 1)), 'every partition keeps a replica');
  t.comment(`figure: the dead daemon left its chains ${Math.round(leftMs)} ms after the new leader was seen (grace ${settleGraceMs} ms)`);

  const history = await workload.finished();
  const firstWrite = firstWriteAfter(history, killedOnWorkerClock);
  t.ok(firstWrite, 'writes resumed after the kills');
  t.comment(`figure: leader + daemon SIGKILL to the first acknowledged write after it: ${firstWrite ? Math.round(firstWrite.end - killedOnWorkerClock) : '-'} ms (new leader seen after ${Math.round(wonAt - killedAt)} ms)`);
  history.push(...(await finalReads(t, thisHost, cluster.addresses, space, keys)));
  const checked = check(history);
  t.ok(checked.verdict.ok, `linearizable with final reads: ${checked.verdict.summary}`);
  t.ok(checked.okWrites > 50, `acknowledged writes: ${checked.okWrites} of ${checked.ops} ops`);
  t.equal(historyGrows(await configHistory(cluster.etcd, cluster.prefix)), undefined, 'the stored config history only grows');
});

t.test('SIGSTOP the leader past its lease: a new leader meanwhile; the old one answers NOT_LEADER and acts no more', async (t) => {
  const { cluster, probe } = await spaceCluster(t);
  const oldLeader = await cluster.leader();
  const old = cluster.coordinators[oldLeader]!;
  const oldEpoch = (await askLeader(old.address))!.epoch!;
  // Opened before the pause: the request below reaches its socket while it cannot run.
  const raw = await Connection.open(old.address, () => {}, 5_000, '/', undefined, 'coordinator');
  t.teardown(() => raw.close());

  old.proc.child.kill('SIGSTOP');
  const stoppedAt = performance.now();
  t.teardown(() => old.proc.child.kill('SIGCONT'));
  const newLeader = await cluster.leader(10_000);
  t.not(newLeader, oldLeader, 'another coordinator leads while the old one is stopped');
  const newEpoch = (await askLeader(cluster.coordinators[newLeader]!.address))!.epoch!;
  t.ok(newEpoch > oldEpoch, `the new epoch ${newEpoch} is above ${oldEpoch}`);
  const answer = raw.request({ t: 'add_space', name: 'ghost', partitions: 1, tolerate: 0 }, 30_000).then(
    () => 'added',
    (e: unknown) => asKvError(e).code,
  );
  // The fault is a duration: stopped for longer than TTL + 1 s.
  const pausedMs = electionMsMax + 500;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, pausedMs - (performance.now() - stoppedAt))));
  old.proc.child.kill('SIGCONT');
  t.comment(`the old leader was stopped for ${Math.round(performance.now() - stoppedAt)} ms`);

  t.equal(await answer, 'NOT_LEADER', 'the request sent while it was stopped is refused NOT_LEADER once it runs again');
  await old.proc.waitForLog('stepped down: no longer the leader', 10_000);
  t.pass('the old process logs that it stepped down');
  const current = await probe.showConfig();
  t.notOk(current.spaces.some((s) => s.name === 'ghost'), 'the space was not added');

  const shown = await kv(t, ['show-config', '--json', '-c', cluster.addresses]);
  t.equal(shown.code, 0);
  const shownConfig = JSON.parse(shown.stdout) as ClusterConfig;
  t.equal(shownConfig.epoch, newEpoch, 'show-config gives the new leader\'s epoch');
  const stored = await configHistory(cluster.etcd, cluster.prefix);
  const firstNew = stored.findIndex((c) => c.epoch === newEpoch);
  t.ok(firstNew > 0, 'etcd holds configs of the new epoch');
  t.same(stored.slice(firstNew).filter((c) => c.epoch !== newEpoch), [], 'no write of the old epoch after the new epoch\'s first one');
  t.equal(historyGrows(stored), undefined, 'the stored config history only grows');
  t.notOk(stored.some((c) => c.spaces.includes('ghost')), 'no stored config ever held the refused space');
  // A daemon acknowledges the config it runs; the new leader's first config is above every version before it.
  const firstNewVersion = stored[firstNew]!.version;
  const newAddress = cluster.coordinators[newLeader]!.address;
  await waitFor('every daemon to register with the new leader', () =>
    cluster.daemons.every((d) => d.proc.logs.some((l) => l.msg === 'registered with the coordinator' && l.coordinator === newAddress)), 20_000, 100);
  const following = await waitFor('every daemon available in the new leader\'s config', async () => {
    const r = await kv(t, ['show-config', '--json', '-c', cluster.addresses]);
    const c = r.code === 0 ? (JSON.parse(r.stdout) as ClusterConfig) : undefined;
    return c && c.servers.filter((s) => s.state === 'available').length === 3 ? c : undefined;
  }, 20_000, 200);
  t.equal(following.epoch, newEpoch, `every daemon registered with the new leader and is available in its config of epoch ${newEpoch}`);
  // Each daemon acknowledges the config it runs; the new leader's first config is above every version before it.
  const asked = await admin(t, cluster);
  const acked = await waitFor('the daemons\' acknowledged versions', async () => {
    const status = await asked.status();
    const versions = cluster.daemons.map((d) => status.acked[d.serverId] ?? 0);
    return versions.every((v) => v >= firstNewVersion) ? versions : undefined;
  }, 10_000, 200).catch(() => undefined);
  t.ok(acked, `every daemon acknowledges a config of epoch ${newEpoch} (version ${firstNewVersion} or later)`);
});

t.test('restore a local-store backup into etcd: read-only, daemons register; a non-empty prefix is refused', async (t) => {
  const local = await startCluster(t, { daemons: 2 });
  const client = await local.client();
  await client.addSpace('users', { partitions: 4 });
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.put('users', `u${i}`, { i })));
  const root = tempDir(t, 'kv-backups-');
  const summary = await backupManager(t, local.coordinator.address, root);
  const backupDir = join(root, summary.name);
  const ids = summary.servers.map((s) => s.serverId);
  const prefix = `/kv/restored-${summary.name.replace(/[^a-z0-9]/gi, '')}`;
  const bin = join(backupDir, 'coordinator.bin');

  const coordinator = runKvProcess(t, [...coordinatorArgs(etcd, prefix, 0, ttlSeconds), '--restore', bin]);
  const listening = await coordinator.waitForLog('listening', processStartMs);
  await coordinator.waitForLog('won the leader election', processStartMs);
  const address = String(listening.address);
  const copies = tempDir(t, 'kv-restore-');
  for (const id of ids) {
    cpSync(join(backupDir, id), join(copies, id), { recursive: true });
    const daemon = await startDaemon(t, address, { dataDir: join(copies, id) });
    t.equal(daemon.serverId, id, `daemon ${id} registers from its copy`);
  }
  const restored = await Client.connect(address, { timeoutMs: 30_000 });
  t.teardown(() => restored.close());
  await waitFor('both restored daemons available', () => restored.showConfig().then((c) => c.servers.filter((s) => s.state === 'available').length === ids.length), 30_000);
  const shown = await kv(t, ['show-config', '-c', address]);
  t.equal(shown.code, 0);
  t.match(shown.stdout, /flags read-only/, 'the restored cluster comes up read-only');
  t.equal((await restored.showConfig()).clusterId, (await client.showConfig()).clusterId, 'same cluster id');
  t.same(await restored.get('users', 'u7'), { i: 7 }, 'the data is there');

  // The prefix now holds a cluster: a second restore into it is refused, and changes nothing.
  const raw = new EtcdClient(etcd.endpoints);
  const snapshot = async () => (await raw.range(`${prefix}/`, { prefix: true })).kvs.map((k) => `${k.key.toString()}@${k.modRevision}`);
  const before = await snapshot();
  const again = await kv(t, [...coordinatorArgs(etcd, prefix, 0, ttlSeconds), '--restore', bin], {}, 60_000);
  t.equal(again.code, exitCodes.failure, 'the restore into a non-empty prefix exits 1 (DATA_DIR_INVALID)');
  const lines = messageLines(again.stderr);
  t.equal(lines.length, 1, `one line: ${lines.join(' | ')}`);
  t.match(lines[0], /not empty/);
  t.same(await snapshot(), before, 'the prefix is untouched');
  t.ok(readFileSync(bin).length > 0);
});

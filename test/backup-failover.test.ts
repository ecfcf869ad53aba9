// Backups across a coordinator failover, with real processes: three coordinators on a real etcd (lease TTL 2 s),
// three daemons, sequential writers. The leader is SIGKILLed while a backup stalls on entering each state of its
// machine (the hidden --fault-stall-backup-at STATE:MS); the backup command must fail with one line, no daemon may
// stay frozen past the freeze lease, the new leader must carry no freeze and sweep every unsealed snapshot, and a
// retried backup must succeed (the one after a kill mid-freeze restored and checked as a consistent cut). Then a
// backup-manager run whose leader changes while it copies: the renewal of its lock is refused by the new leader,
// and the run fails cleanly, leaving nothing behind.
//
// One cluster runs every case. The stall is a flag of each coordinator, so while the leader stalls at this case's
// state the followers stall at the next one: whichever wins after the kill stalls the retry there, and leads the
// next case. Each case restarts the coordinators that need another flag, so three always run.
import t, { type Test } from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client } from '../shared/client.js';
import type { ErrorCode } from '../shared/errors.js';
import type { SnapshotInfo } from '../shared/protocol.js';
import { exitCodeOf } from '../cli/exit-codes.js';
import { kv, messageLines, runKvProcess, tempDir, waitFor, type KvProcess } from './helpers/cluster.js';
import { askLeader, startReplicated, type ReplicatedCluster } from './helpers/replicated.js';
import { backupManager, processesMentioning, restore, slowRsyncPath } from './helpers/backup.js';

/** The states the leader is killed in (check has no wait of its own: it runs between capture and save). */
const states = ['prepare', 'freeze', 'quiesce', 'capture', 'save', 'thaw', 'seal'] as const;
type State = (typeof states)[number];

const stallMs = 3_000;
/** Room for a 3 s stall inside the freeze, with the lease's 1 s margin and the captures. */
const leaseMs = 7_000;
/** A loaded two-core machine: a process's timers and an election can be this late. */
const slackMs = 3_000;
/** How long a backup command may take to fail once its leader is killed. */
const failWithinMs = 15_000;
const backupFlags = ['--lease-ms', String(leaseMs), '--frozen-ms-max', '30000'];
/** The states the cluster is frozen in when the backup enters them. */
const frozenStates: readonly State[] = ['quiesce', 'capture', 'save', 'thaw'];
const stallAt = (state: State | undefined) => (state ? ['--fault-stall-backup-at', `${state}:${stallMs}`] : []);

const stallsAt = (proc: KvProcess, state: State) =>
  proc.logs.filter((l) => l.msg === 'backup stalled (testing fault)' && l.state === state).length;
const thawLogs = (proc: KvProcess) =>
  proc.logs.filter((l) => l.msg === 'thawed' || l.msg === 'thawed by the lease: the coordinator did not end the freeze');
const freezeLogs = (proc: KvProcess) => proc.logs.filter((l) => l.msg === 'frozen');

interface Writers {
  acked: Array<Array<{ i: number; at: number }>>;
  errors: unknown[];
  total(): number;
  stop(): Promise<void>;
}

/**
 * Writers of their own keys TAG/w/0, TAG/w/1, … strictly in order: the next only once the one before is
 * acknowledged. A failed put is tried again with the same key and value before going on, so whatever reached the
 * daemons is a prefix of each writer's keys.
 */
function startWriters(addresses: string, count: number, space: string, tag: string): Writers {
  const acked: Writers['acked'] = Array.from({ length: count }, () => []);
  const errors: unknown[] = [];
  let stop = false;
  const loops = acked.map(async (mine, w) => {
    const c = await Client.connect(addresses, { timeoutMs: 30_000 });
    try {
      for (let i = 0; !stop; ) {
        try {
          await c.put(space, `${tag}/${w}/${i}`, { w, i });
          mine.push({ i, at: Date.now() });
          i++;
        } catch (error) {
          errors.push(error);
        }
        // A pause between writes leaves the two cores to the processes under test.
        await new Promise((resolve) => setTimeout(resolve, 2));
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

async function listSnapshots(t: Test, addresses: string) {
  const listed = await kv(t, ['list-snapshots', '--json', '--coordinator', addresses]);
  if (listed.code !== 0) throw new Error(`list-snapshots exited ${listed.code}: ${listed.stderr.slice(-300)}`);
  return JSON.parse(listed.stdout) as { snapshots: Array<SnapshotInfo & { serverId: string }>; unreachable: unknown[] };
}

/** The snapshots on the daemons, once none is unsealed (the new leader sweeps them as daemons register again). */
async function onlySealed(t: Test, addresses: string) {
  let last: Awaited<ReturnType<typeof listSnapshots>> | undefined;
  await waitFor(() => `only sealed snapshots on the daemons (listed: ${JSON.stringify(last)})`, async () => {
    last = await listSnapshots(t, addresses);
    return last.unreachable.length === 0 && last.snapshots.every((s) => s.sealed && s.state === 'sealed');
  }, 20_000, 250);
  return last!.snapshots;
}

/** Whether what a restored cluster holds of each writer is a contiguous prefix with every write acknowledged before `cutAt`. */
async function checkPrefixes(t: Test, restored: Client, space: string, tag: string, writers: Writers, cutAt: number) {
  const present: Array<Set<number>> = writers.acked.map(() => new Set());
  for await (const [key] of restored.scan(space)) {
    const [keyTag, w, i] = key.split('/');
    if (keyTag === tag) present[Number(w)]!.add(Number(i));
  }
  for (const [w, got] of present.entries()) {
    const prefix = got.size;
    const mustHave = writers.acked[w]!.filter((a) => a.at < cutAt).length;
    t.ok([...got].every((i) => i < prefix), `writer ${w}: the restored keys are a contiguous prefix (${prefix} keys)`);
    t.ok(prefix >= mustHave, `writer ${w}: it holds all ${mustHave} writes acknowledged before the freeze (has ${prefix})`);
    t.ok(prefix <= writers.acked[w]!.length + 1, `writer ${w}: nothing that was never sent`);
  }
}

/** A replicated cluster whose coordinators each stall backups at one state. */
interface Stalling {
  cluster: ReplicatedCluster;
  /** Coordinator i's stall state. */
  stalls: Array<State | undefined>;
}

async function restartStalling(s: Stalling, i: number, state: State | undefined) {
  s.stalls[i] = state;
  await s.cluster.restartCoordinator(i, stallAt(state));
}

async function killedAt(t: Test, s: Stalling, client: Client, n: number, dirs: { root: string; out: string }) {
  const { cluster } = s;
  const state = states[n]!;
  const next = states[n + 1];
  const leader = await cluster.leader();
  t.equal(s.stalls[leader], state, `the leader (coordinator ${leader}) stalls backups at ${state}`);
  // The followers stall at the next state: the retry after the kill (on one of them) stalls there, and this
  // case's new leader is the next case's killed one.
  await Promise.all([...cluster.coordinators.keys()].filter((i) => i !== leader && s.stalls[i] !== next).map(async (i) => {
    await cluster.coordinators[i]!.proc.stop();
    await restartStalling(s, i, next);
  }));
  t.equal(await cluster.leader(), leader, 'restarting the followers leaves the leader in place');

  const writers = startWriters(cluster.addresses, 3, 'w', state);
  await waitFor(() => `the writers to get going (${writers.total()} acknowledged)`, () => writers.total() >= 100, 30_000);
  const doomed = cluster.coordinators[leader]!;
  const stalledBefore = stallsAt(doomed.proc, state);
  const frozenBefore = cluster.daemons.map((d) => freezeLogs(d.proc).length);
  const viaManager = n % 2 === 1;
  const name = `fo-${state}`;
  const command = viaManager
    ? runKvProcess(t, ['backup-manager', '--backup-dir', dirs.root, '--coordinator', cluster.addresses, ...backupFlags])
    : runKvProcess(t, ['backup', name, '--out', dirs.out, '--coordinator', cluster.addresses, ...backupFlags]);
  await waitFor(`the leader to stall the backup on entering ${state}`, () => stallsAt(doomed.proc, state) > stalledBefore, 30_000);
  const frozen = frozenStates.includes(state);
  // The stall is logged as it begins: on entering quiesce the freeze may still be on its way to some daemons.
  if (frozen) await waitFor('every daemon frozen', () => cluster.daemons.every((d, k) => freezeLogs(d.proc).length > frozenBefore[k]!), stallMs / 2);
  doomed.proc.child.kill('SIGKILL');
  const killed = performance.now();
  t.equal(await doomed.proc.exited, null, `the leader (coordinator ${leader}) is killed in ${state}`);

  // Writes flow again within the lease (+ slack) of the kill, frozen or not when it came.
  const atKill = writers.total();
  await waitFor(() => `writes to be accepted again (${writers.total() - atKill} since the kill)`, () => writers.total() >= atKill + 30, leaseMs + slackMs);
  const acceptedMs = performance.now() - killed;
  t.pass(`writes are accepted again ${Math.round(acceptedMs)} ms after the kill (lease ${leaseMs} ms)`);

  const code = await command.waitForExit(failWithinMs);
  const failedMs = performance.now() - killed;
  t.not(code, 0, `${viaManager ? 'backup-manager' : 'kv backup'} exits non-zero (${code}) ${Math.round(failedMs)} ms after the kill`);
  t.not(code, null, 'by exiting, not by a signal');
  const lines = messageLines(command.stderr);
  t.equal(lines.length, 1, `one line on stderr besides logs (got ${JSON.stringify(lines)})`);
  const named = /^kv: .+ \(([A-Z_]+)\)$/.exec(lines[0] ?? '')?.[1];
  t.equal(named, 'BACKUP_FAILED', 'the backup failed, and says so');
  t.equal(code, exitCodeOf(named as ErrorCode), `the exit code is the one of ${named} (cli/exit-codes.ts)`);
  t.notMatch(command.stderr, /^\s+at /m, 'no stack trace');
  if (viaManager) {
    t.same(readdirSync(dirs.root).filter((e) => e.endsWith('.partial')), [], 'backup-manager left no partial directory');
  } else {
    t.equal(command.stdout, '', 'kv backup printed nothing on stdout');
    t.notOk(existsSync(join(dirs.out, `${name}.coordinator.bin`)), 'and wrote no coordinator state');
  }

  const successor = await cluster.leader();
  t.not(successor, leader, `coordinator ${successor} leads now`);
  // Back as a follower, with the stall the next case's followers need.
  const restarted = restartStalling(s, leader, states[n + 2]);
  t.equal((await client.showConfig()).freeze, undefined, "the new leader's config has no freeze");
  // Every freeze the backup set has ended, by the new leader's config or by the lease, never later than the lease.
  await waitFor('every daemon thawed', () => cluster.daemons.every((d) => thawLogs(d.proc).length === freezeLogs(d.proc).length), leaseMs + slackMs);
  for (const [k, d] of cluster.daemons.entries()) {
    const held = thawLogs(d.proc).map((l) => Number(l.heldMs));
    const now = held.slice(frozenBefore[k]!);
    t.ok(held.every((ms) => ms <= leaseMs + 250), `daemon ${d.serverId}: never frozen beyond the lease (this backup: ${now.length ? `${now.join(', ')} ms` : 'not frozen'})`);
    if (frozen) t.equal(now.length, 1, `daemon ${d.serverId} was frozen when the leader died, and thawed once`);
  }
  await cluster.waitForAvailable(3);
  const left = await onlySealed(t, cluster.addresses);
  t.pass(`no unsealed snapshot is left on any daemon (${left.length} sealed)`);

  await restarted;
  const successorProc = cluster.coordinators[successor]!.proc;
  const stalledRetry = next ? stallsAt(successorProc, next) : 0;
  const summary = await backupManager(t, cluster.addresses, dirs.root, backupFlags);
  t.equal(summary.servers.length, 3, `a retried backup succeeds on the new leader (${summary.name}, ${summary.attempts} attempt(s))`);
  if (next) t.equal(stallsAt(successorProc, next), stalledRetry + 1, `and it stalled at ${next} on the way`);
  const afterRetry = writers.total();
  await waitFor('a few writes after the retried backup', () => writers.total() >= afterRetry + 20, 30_000);
  await writers.stop();
  t.same(writers.errors.map(String), [], 'no write failed');
  return { writers, summary };
}

// One cluster for every case, to keep the file fast: each case leaves three coordinators, all thawed and clean.
t.test('backups across coordinator failovers', async (t) => {
  const cluster = await startReplicated(t, { coordinators: 3, daemons: 3, ttlSeconds: 2, coordinatorArgs: stallAt(states[0]) });
  const stalling: Stalling = { cluster, stalls: cluster.coordinators.map(() => states[0]) };
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('w', { partitions: 6 });
  const dirs = { root: tempDir(t, 'kv-backups-'), out: tempDir(t, 'kv-backup-out-') };
  for (const n of states.keys()) {
    await t.test(`the leader killed on entering ${states[n]}`, async (t) => {
      const { writers, summary } = await killedAt(t, stalling, client, n, dirs);
      if (states[n] !== 'quiesce') return;
      // Killed mid-freeze: the retried backup, restored, is a consistent cut of what the writers were acknowledged.
      const restored = await restore(t, join(dirs.root, summary.name), summary.servers.map((s) => s.serverId));
      await checkPrefixes(t, restored.client, 'w', states[n], writers, Date.parse(summary.freeze.beganAt));
      await restored.client.close();
      for (const d of restored.daemons) await d.proc.stop();
      await restored.coordinator.proc.stop();
    });
  }
  t.same(stalling.stalls, cluster.coordinators.map(() => undefined), 'after the last case no coordinator stalls backups');
  await t.test('backup-manager whose leader changes during the copy: the renewal is refused, the run fails cleanly', (t) =>
    leaderChangesDuringCopy(t, stalling, client));
});

async function leaderChangesDuringCopy(t: Test, s: Stalling, client: Client) {
  const { cluster } = s;
  await client.addSpace('big', { partitions: 6 });
  // About 2 MB a daemon: at 100 KB/s the copy outlasts the next renewal (every 10 s) after the kill.
  for (let batch = 0; batch < 16; batch++) {
    await Promise.all(Array.from({ length: 50 }, (_, i) => client.put('big', `k${batch}/${i}`, { v: randomBytes(6_000).toString('base64') })));
  }
  const root = tempDir(t, 'kv-backups-');
  const leader = await cluster.leader();
  const manager = runKvProcess(t, ['backup-manager', '--backup-dir', root, '--coordinator', cluster.addresses], { PATH: slowRsyncPath(t) });
  await manager.waitForLog('cluster snapshot taken; copying', 60_000);
  const partial = readdirSync(root).find((e) => e.endsWith('.partial'));
  t.ok(partial, `copying into ${partial}`);
  await waitFor('rsync copying into the partial directory', () => processesMentioning(join(root, partial!)).length > 0, 10_000);
  cluster.coordinators[leader]!.proc.child.kill('SIGKILL');
  const killed = performance.now();
  await cluster.coordinators[leader]!.proc.exited;
  const successor = await cluster.leader();
  const epoch = (await askLeader(cluster.coordinators[successor]!.address))?.epoch;

  const code = await manager.waitForExit(30_000);
  t.comment(`backup-manager failed ${Math.round(performance.now() - killed)} ms after the kill`);
  t.equal(code, exitCodeOf('BACKUP_FAILED'), `backup-manager exits ${exitCodeOf('BACKUP_FAILED')}, the code of BACKUP_FAILED`);
  const lines = messageLines(manager.stderr);
  t.equal(lines.length, 1, `one line on stderr besides logs (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', /^kv: lost the backup lock: .+\(BACKUP_FAILED\)$/, 'it lost the backup lock');
  t.match(lines[0] ?? '', new RegExp(`leads since epoch ${epoch}\\b`), `refused by the new leader (epoch ${epoch})`);
  t.same(readdirSync(root), [], 'no partial directory, no backup, no LATEST');
  await waitFor('no rsync left copying', () => processesMentioning(join(root, partial!)).length === 0, 10_000);
  t.equal((await client.status()).lock, null, 'the new leader holds no backup lock');
  t.same((await onlySealed(t, cluster.addresses)).map((s) => s.name), [], 'and the run released its snapshots');

  await restartStalling(s, leader, undefined);
  const next = await backupManager(t, cluster.addresses, root);
  t.equal(next.servers.length, 3, `the next run succeeds (${next.name})`);
  t.equal(readFileSync(join(root, 'LATEST'), 'utf8').trim(), next.name, 'LATEST names it');
  const verify = await kv(t, ['verify-backup', join(root, next.name)]);
  t.equal(verify.code, 0, `and it verifies (${verify.stdout.trim().split('\n').at(-1)})`);
}

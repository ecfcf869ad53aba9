// The headline: a backup taken while writers run is a consistent cut. Each writer writes its own keys w/0, w/1, …
// strictly in order (the next only after the previous is acknowledged), over every daemon. After restoring,
// each writer's keys must form a contiguous prefix that includes every write acknowledged before the freeze
// began. No write may fail because of the backup.
import t, { type Test } from 'tap';
import { Client } from '../shared/client.js';
import { startCluster, tempDir, waitFor } from './helpers/cluster.js';
import { backupManager, restore } from './helpers/backup.js';

const writers = 6;
const runs = 3;

interface Writer {
  acked: Array<{ i: number; at: number; ms: number }>;
  errors: unknown[];
}

/** Backups of a cluster under write load, each restored and checked. */
async function consistentCuts(t: Test, options: { tolerate: number; runs: number; daemonDown: boolean }) {
  const cluster = await startCluster(t, { daemons: 3, daemonArgs: ['--write-buffer-bytes', '65536'] });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('w', { partitions: 12, tolerate: options.tolerate });
  const root = tempDir(t, 'kv-backups-');
  if (options.daemonDown) {
    const victim = cluster.daemons[2]!;
    victim.proc.child.kill('SIGKILL');
    await waitFor('the dead daemon to leave every chain', () =>
      client.showConfig().then((c) => c.spaces[0]!.partitions.every((p) => !p.chain.includes(victim.serverId))), 30_000,
    );
  }

  for (let run = 1; run <= options.runs; run++) {
    const state: Writer[] = Array.from({ length: writers }, () => ({ acked: [], errors: [] }));
    let stop = false;
    const loops = state.map(async (writer, w) => {
      const c = await Client.connect(cluster.coordinator.address, { timeoutMs: 30_000 });
      for (let i = 0; !stop; i++) {
        const started = performance.now();
        try {
          await c.put('w', `r${run}/${w}/${i}`, { i, pad: 'x'.repeat(200) });
          state[w]!.acked.push({ i, at: Date.now(), ms: performance.now() - started });
        } catch (error) {
          writer.errors.push(error);
          break;
        }
      }
      await c.close();
    });
    // Let the writers get going (and LevelDB flush a few tables) before the backup.
    const progress = () => `acknowledged ${state.map((w) => w.acked.length).join(', ')}; errors ${state.map((w) => w.errors.length).join(', ')}`;
    // A writer that failed stops here too: the assertions below report its error.
    await waitFor(() => `every writer to have 200 writes acknowledged (${progress()})`, () =>
      state.every((w) => w.acked.length >= 200 || w.errors.length > 0), 60_000);
    const summary = await backupManager(t, cluster.coordinator.address, root);
    // Keep writing a little after the backup, so "after the cut" writes exist too.
    const after = state.map((w) => w.acked.length + 50);
    await waitFor(() => `every writer to have 50 more writes acknowledged after the backup (${progress()})`, () =>
      state.every((w, i) => w.acked.length >= after[i]! || w.errors.length > 0), 60_000);
    stop = true;
    await Promise.all(loops);

    t.same(state.map((w) => w.errors.length), Array(writers).fill(0), `run ${run}: no write failed during the backup`);
    const frozeAt = Date.parse(summary.freeze.beganAt);
    const thawedAt = Date.parse(summary.freeze.endedAt);
    const during = state.flatMap((w) => w.acked.filter((a) => a.at >= frozeAt - 5 && a.at - a.ms <= thawedAt + 5));
    const worst = Math.max(0, ...during.map((a) => a.ms));
    t.comment(
      `run ${run}: freeze ${summary.freeze.ms.toFixed(1)} ms, ${during.length} writes overlapped it, ` +
        `worst write latency then ${worst.toFixed(1)} ms, attempts ${summary.attempts}`,
    );

    t.ok(Object.values(summary.coverage).every((ids) => ids.length >= 1), `run ${run}: every partition has a copy in the backup`);
    if (options.tolerate > 0 && !options.daemonDown) {
      t.ok(summary.skipped.length >= 1, `run ${run}: one replica per partition: ${summary.servers.length} of 3 snapshots copied`);
    }
    const restored = await restore(t, `${root}/${summary.name}`, summary.servers.map((s) => s.serverId));
    if (options.tolerate > 0 && summary.servers.length > options.tolerate) {
      // The replicas that were not copied are rebuilt on the restored daemons by state transfer.
      await waitFor('the restored cluster to rebuild every replica', () =>
        restored.client.showConfig().then((c) => c.spaces[0]!.partitions.every((p) => p.chain.length === options.tolerate + 1 && !p.joining)),
        60_000,
      );
      t.pass(`run ${run}: the restored cluster rebuilt tolerate+1 replicas of every partition`);
    }
    const present: Array<Set<number>> = Array.from({ length: writers }, () => new Set());
    for await (const [key] of restored.client.scan('w')) {
      const [r, w, i] = key.split('/');
      if (r === `r${run}`) present[Number(w)]!.add(Number(i));
    }
    for (let w = 0; w < writers; w++) {
      const got = present[w]!;
      const prefix = got.size;
      const contiguous = [...got].every((i) => i < prefix);
      const mustHave = state[w]!.acked.filter((a) => a.at < frozeAt).length;
      t.ok(contiguous, `run ${run} writer ${w}: the restored keys are a contiguous prefix (${prefix} keys)`);
      t.ok(prefix >= mustHave, `run ${run} writer ${w}: it holds all ${mustHave} writes acknowledged before the freeze (has ${prefix})`);
      t.ok(prefix <= state[w]!.acked.length + 1, `run ${run} writer ${w}: nothing from after the cut that was never sent`);
    }
    await restored.client.close();
    for (const d of restored.daemons) await d.proc.stop();
    await restored.coordinator.proc.stop();
  }
}

t.test('backups under load are consistent cuts', (t) => consistentCuts(t, { tolerate: 0, runs, daemonDown: false }));
t.test('with --tolerate 1 (one replica per partition copied)', (t) => consistentCuts(t, { tolerate: 1, runs: 2, daemonDown: false }));
t.test('with --tolerate 1 and a daemon down during the backups', (t) => consistentCuts(t, { tolerate: 1, runs: 1, daemonDown: true }));

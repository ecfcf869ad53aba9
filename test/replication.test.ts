// Chains of F+1 daemons (--tolerate F): writes enter at the head and are answered once the tail has them; reads
// are served by the tail. A daemon killed with SIGKILL leaves its chains; no acknowledged write is lost.
import t from 'tap';
import { KvError } from '../shared/errors.js';
import { startCluster, startDaemon, waitFor } from './helpers/cluster.js';
import { partitionContents } from './helpers/replicas.js';

t.test('with --tolerate 1, a daemon killed under load loses no acknowledged write', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('r', { partitions: 9, tolerate: 1 });
  const chains = client.currentConfig.spaces[0]!.partitions.map((p) => p.chain);
  t.ok(chains.every((c) => c.length === 2 && c[0] !== c[1]), 'every partition has a chain of two distinct daemons');

  const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
  const acked = new Map<string, number>(keys.map((k) => [k, 0]));
  await Promise.all(keys.map((k) => client.put('r', k, { n: 0 })));

  let stop = false;
  let writeErrors = 0;
  let staleReads = 0;
  let reads = 0;
  const readErrors: string[] = [];
  let longestStallMs = 0;
  const writer = (async () => {
    for (let n = 1; !stop; n++) {
      const key = keys[n % keys.length]!;
      const started = performance.now();
      try {
        await client.put('r', key, { n });
        acked.set(key, n);
      } catch {
        writeErrors++;
      }
      longestStallMs = Math.max(longestStallMs, performance.now() - started);
    }
  })();
  const reader = (async () => {
    for (let i = 0; !stop; i++) {
      const key = keys[i % keys.length]!;
      const floor = acked.get(key)!;
      try {
        const value = await client.get('r', key);
        reads++;
        if (!value || (value.n as number) < floor) staleReads++;
      } catch (error) {
        readErrors.push(error instanceof KvError ? `${error.code}: ${error.message}` : String(error));
      }
    }
  })();

  const ackedSum = () => [...acked.values()].reduce((a, b) => a + b, 0);
  await waitFor(() => `writes to get going (acknowledged sum ${ackedSum()} of 5000, ${writeErrors} write errors)`, () => ackedSum() >= 5_000, 60_000);
  const victim = cluster.daemons[1]!;
  const readsAtKill = reads;
  victim.proc.child.kill('SIGKILL');
  await waitFor('the coordinator to drop the dead daemon from every chain', () =>
    client.showConfig().then((c) => c.spaces[0]!.partitions.every((p) => !p.chain.includes(victim.serverId))),
  );
  const ackedAtKill = new Map(acked);
  await waitFor('writes to continue after the failure', () =>
    keys.every((k) => acked.get(k)! > ackedAtKill.get(k)!), 30_000,
  );
  await waitFor(() => `reads to continue after the failure (${reads - readsAtKill} since the kill)`, () => reads > readsAtKill + keys.length, 30_000);
  stop = true;
  await Promise.all([writer, reader]);

  t.equal(writeErrors, 0, 'no write failed: the client retried through the failover');
  t.ok(readsAtKill > 0, `reads were answered before the failure (${readsAtKill})`);
  t.ok(reads > readsAtKill + keys.length, `and after it (${reads - readsAtKill})`);
  t.same(readErrors.slice(0, 5), [], `no read failed: the client retried through the failover (${readErrors.length} failed)`);
  t.equal(staleReads, 0, `every one of ${reads} reads returned the latest acknowledged value or a newer one`);
  t.comment(`longest a single write took across the failure: ${longestStallMs.toFixed(0)} ms`);
  const values = await Promise.all(keys.map((k) => client.get('r', k)));
  t.ok(values.every((v, i) => (v?.n as number) >= acked.get(keys[i]!)!), 'every acknowledged write survived');
});

t.test('with --tolerate 1 and two daemons down, affected partitions answer UNAVAILABLE, never wrong data', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client({ timeoutMs: 5_000 });
  await client.addSpace('r', { partitions: 9, tolerate: 1 });
  const keys = Array.from({ length: 90 }, (_, i) => `k${i}`);
  await Promise.all(keys.map((k, i) => client.put('r', k, { i })));

  // Both at once: given time between the failures, the chains would re-replicate onto the survivor first.
  const [, b, c] = cluster.daemons as [unknown, (typeof cluster.daemons)[0], (typeof cluster.daemons)[0]];
  b.proc.child.kill('SIGKILL');
  c.proc.child.kill('SIGKILL');
  await waitFor('the coordinator to see both gone', () =>
    client.showConfig().then((cfg) => [b, c].every((v) => cfg.servers.find((s) => s.id === v.serverId)?.state === 'not_available')),
  );
  const results = await Promise.allSettled(keys.map((k) => client.get('r', k)));
  const ok = results.filter((r) => r.status === 'fulfilled') as Array<PromiseFulfilledResult<Record<string, unknown> | undefined>>;
  const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  t.ok(ok.length > 0, `keys whose chain kept a live daemon are served (${ok.length})`);
  t.ok(failed.length > 0, `keys whose every replica is down fail (${failed.length})`);
  t.ok(failed.every((r) => (r.reason as KvError).code === 'UNAVAILABLE'), 'with UNAVAILABLE');
  t.ok(results.every((r, i) => r.status === 'rejected' || (r.value as { i: number }).i === i), 'and nothing wrong is returned');
});

t.test('a restarted daemon catches up by state transfer and rejoins its chains; every replica holds the same data', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('r', { partitions: 6, tolerate: 1 });
  const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
  await Promise.all(keys.map((k, i) => client.put('r', k, { i, round: 0 })));

  const victim = cluster.daemons[0]!;
  t.equal(await victim.proc.stop('SIGKILL'), null);
  await waitFor('the victim to leave every chain', () =>
    client.showConfig().then((c) => c.spaces[0]!.partitions.every((p) => !p.chain.includes(victim.serverId))),
  );
  // Writes while it is away: it must receive them by transfer.
  await Promise.all(keys.map((k, i) => client.put('r', k, { i, round: 1 })));

  const back = await startDaemon(t, cluster.coordinator.address, { dataDir: victim.dataDir });
  const config = await waitFor('every partition to have two members again, the victim among them', () =>
    client.showConfig().then((c) => {
      const parts = c.spaces[0]!.partitions;
      return parts.every((p) => p.chain.length === 2 && !p.joining) && parts.some((p) => p.chain.includes(victim.serverId)) ? c : undefined;
    }), 30_000,
  );
  const values = await Promise.all(keys.map((k) => client.get('r', k)));
  t.ok(values.every((v, i) => v?.i === i && v.round === 1), 'reads (now possibly from the returned daemon) see the latest writes');

  // Compare the replicas directly: stop every daemon and read each one's LevelDB.
  const running = [back, ...cluster.daemons.slice(1)];
  await Promise.all(running.map((d) => d.proc.stop()));
  const dirOf = new Map(running.map((d) => [d.serverId, d.dataDir]));
  const space = config.spaces[0]!;
  let entries = 0;
  for (const [partition, p] of space.partitions.entries()) {
    const [a, b] = await Promise.all(p.chain.map((id) => partitionContents(dirOf.get(id)!, space.id, partition)));
    t.same([...b!.entries()].sort(), [...a!.entries()].sort(), `partition ${partition}: both replicas hold the same data`);
    entries += a!.size;
  }
  t.equal(entries, keys.length, 'and together every key, once');
});

t.test('a fourth daemon joins: partitions move to it while writes go on, and the data stays complete', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('r', { partitions: 12, tolerate: 1 });
  const keys = Array.from({ length: 600 }, (_, i) => `k${i}`);
  const acked = new Map<string, number>();
  await Promise.all(keys.map((k) => client.put('r', k, { n: 0 }).then(() => acked.set(k, 0))));

  let stop = false;
  let errors = 0;
  let during = 0;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let n = 1; !stop; n++) {
      const key = keys[(n * 4 + w) % keys.length]!;
      try {
        await client.put('r', key, { n });
        acked.set(key, n);
        during++;
      } catch {
        errors++;
      }
    }
  });
  const fourth = await startDaemon(t, cluster.coordinator.address);
  const config = await waitFor('partitions to move to the new daemon and every transfer to finish', () =>
    client.showConfig().then((c) => {
      const parts = c.spaces[0]!.partitions;
      const held = parts.filter((p) => p.chain.includes(fourth.serverId)).length;
      return held >= 4 && parts.every((p) => !p.joining && p.chain.length === 2) ? c : undefined;
    }), 60_000,
  );
  const before = during;
  await waitFor('writes to go on after the moves', () => during > before + 100);
  stop = true;
  await Promise.all(writers);

  t.equal(errors, 0, 'no write failed during the moves');
  t.ok(before > 0, `writes went on during the moves (${before} acknowledged)`);
  const load = new Map<string, number>();
  for (const p of config.spaces[0]!.partitions) for (const id of p.chain) load.set(id, (load.get(id) ?? 0) + 1);
  t.ok(Math.max(...load.values()) - Math.min(...load.values()) <= 1, `the load is spread: ${[...load.values()].join(', ')} partitions per daemon`);
  const values = await Promise.all(keys.map((k) => client.get('r', k)));
  const behind = keys.flatMap((k, i) => (values[i] !== undefined && (values[i]!.n as number) >= acked.get(k)! ? [] : [`${k}: read ${JSON.stringify(values[i])}, acked ${acked.get(k)}`]));
  t.same(behind.slice(0, 5), [], 'every key is there with its latest acknowledged value');
  t.equal(await client.count('r'), keys.length, 'and nothing extra');
});

t.test('server-forget removes a dead server for good, but not one holding the only copy', async (t) => {
  const cluster = await startCluster(t, { daemons: 3 });
  const client = await cluster.client();
  await client.addSpace('r', { partitions: 6, tolerate: 1 });
  await client.addSpace('single', { partitions: 3, tolerate: 0 });
  const victim = cluster.daemons[0]!;
  victim.proc.child.kill('SIGKILL');
  await waitFor('the victim to be down', () =>
    client.showConfig().then((c) => c.servers.find((s) => s.id === victim.serverId)?.state === 'not_available'),
  );
  await t.rejects(client.forgetServer(victim.serverId), { code: 'UNAVAILABLE' }, 'refused: it holds the only copy of a tolerate-0 partition');
  await client.rmSpace('single');
  const { kv } = await import('./helpers/cluster.js');
  const forgot = await kv(t, ['server-forget', victim.serverId, '--coordinator', cluster.coordinator.address]);
  t.equal(forgot.code, 0, forgot.stderr);
  const config = await client.showConfig();
  t.notOk(config.servers.some((s) => s.id === victim.serverId), 'it is gone from the config');
  t.ok(config.spaces.every((s) => s.partitions.every((p) => !p.chain.includes(victim.serverId))), 'and from every chain');
});

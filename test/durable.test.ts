// kv daemon --durable: every acknowledged write was fsynced first, and group commit shares one fsync among the
// writes that arrive together. Checked from outside, by tracing the daemon's fdatasync/fsync system calls with
// strace, and from its own metrics; without --durable the same writes make no fsync at all. (What a sync buys,
// surviving a power loss, is the kernel's and the disk's promise for fdatasync; cutting a machine's power is not
// something a test on one VM can do.)
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '../shared/client.js';
import { startCoordinator, startDaemon, tempDir, waitFor, type TestLike } from './helpers/cluster.js';
import { metricValue, scrapeMetrics as scrape } from '../shared/prometheus-text.js';

/** strace attached to every thread of `pid`, recording its fsync-family calls; `stop()` detaches and counts them. */
async function traceSyncs(t: TestLike, pid: number) {
  const out = join(tempDir(t), 'strace.out');
  const strace = spawn('strace', ['-f', '-e', 'trace=fsync,fdatasync', '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  strace.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => strace.once('exit', (code) => resolve(code)));
  t.teardown(() => void strace.kill('SIGKILL'));
  // strace says "Process N attached" for each thread it attached to (LevelDB's and libuv's threads included).
  await waitFor('strace to attach to the daemon', () => {
    if (strace.exitCode !== null) throw new Error(`strace exited with ${strace.exitCode}: ${stderr}`);
    return /attached/.test(stderr);
  });
  return {
    async stop(): Promise<number> {
      strace.kill('SIGINT');
      await exited;
      // A call another thread interrupts is split into "fdatasync(7 <unfinished ...>" and its "resumed" line.
      return readFileSync(out, 'utf8').split('\n').filter((line) => /\b(fdatasync|fsync)\(/.test(line)).length;
    },
  };
}

async function daemonWithMetrics(t: TestLike, durable: boolean) {
  const coordinator = await startCoordinator(t);
  const daemon = await startDaemon(t, coordinator.address, { args: ['--metrics-port', '0', ...(durable ? ['--durable'] : [])] });
  const metrics = String((await daemon.proc.waitForLog('metrics listening')).address);
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('d', { partitions: 4 });
  return { daemon, metrics, client };
}

t.test('--durable: every acknowledged write was synced, and concurrent writes share fsyncs', async (t) => {
  const { daemon, metrics, client } = await daemonWithMetrics(t, true);
  t.equal(daemon.proc.logs.find((l) => l.msg === 'listening')?.durable, true, 'the daemon says it is durable');
  await client.put('d', 'warm', { v: 0 }); // the session's first write, before tracing

  const trace = await traceSyncs(t, daemon.proc.child.pid!);
  const before = await scrape(metrics);
  // One at a time: each put is answered before the next is sent, so each is its own group and needs its own sync.
  for (let i = 0; i < 30; i++) await client.put('d', `seq${i}`, { i });
  const sequential = await scrape(metrics);
  const syncCalls = await trace.stop();
  const fsyncs = metricValue(sequential, 'kv_fsyncs_total') - metricValue(before, 'kv_fsyncs_total');
  t.ok(fsyncs >= 30, `30 writes one after another: ${fsyncs} synced batches, at least one each`);
  t.ok(syncCalls >= 30, `and the daemon made ${syncCalls} fsync/fdatasync calls, seen by strace`);

  await Promise.all(Array.from({ length: 400 }, (_, i) => client.put('d', `par${i}`, { i })));
  const concurrent = await scrape(metrics);
  const shared = metricValue(concurrent, 'kv_fsyncs_total') - metricValue(sequential, 'kv_fsyncs_total');
  t.ok(shared >= 1 && shared < 400, `400 writes at once: ${shared} synced batches (group commit)`);
  t.ok(metricValue(concurrent, 'kv_commit_group_operations_sum') - metricValue(sequential, 'kv_commit_group_operations_sum') >= 400, 'holding every write');
  t.ok(metricValue(concurrent, 'kv_commit_seconds_count') > metricValue(before, 'kv_commit_seconds_count'), 'each batch write timed');
  t.equal(await client.count('d'), 431, 'and every write is there');
});

t.test('without --durable the same writes make no fsync', async (t) => {
  const { daemon, metrics, client } = await daemonWithMetrics(t, false);
  t.equal(daemon.proc.logs.find((l) => l.msg === 'listening')?.durable, false, 'the daemon says it is not durable');
  await client.put('d', 'warm', { v: 0 });
  const trace = await traceSyncs(t, daemon.proc.child.pid!);
  for (let i = 0; i < 30; i++) await client.put('d', `seq${i}`, { i });
  const after = await waitFor('the daemon to count 31 puts', async () => {
    const s = await scrape(metrics);
    return metricValue(s, 'kv_requests_total', { type: 'put', code: 'ok' }) >= 31 ? s : undefined;
  });
  t.equal(await trace.stop(), 0, 'strace saw no fsync or fdatasync');
  t.equal(metricValue(after, 'kv_fsyncs_total'), 0, 'and the daemon counted none');
});

// Replication benchmark: what chains cost and how fast writes resume after a daemon dies.
//
//   node dist/bench/replication.js [--rounds 3] [--seconds 8] [--keys 20000] [--clients 16] [--inflight 4] [--json]
//   npm run bench -- replication
//
// 1. Throughput: 3 daemons, a 16-partition space with --tolerate 0 and then --tolerate 1, in alternating rounds
//    (side by side on a noisy machine), 50/50 get/put of 100-byte values; ops/s and p50/p99 per round, medians.
// 2. Failover: --tolerate 1, 8 writers each doing one put at a time on random keys; one daemon is killed
//    (SIGKILL: a crash, the connection drops at once) or hung (SIGSTOP: found only by the coordinator's heartbeat,
//    default 1 s interval, 3 s timeout). Reported: the longest any write took across the failure, the longest
//    stretch with no write completing, and failed writes (which must be 0: puts are retried).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '../shared/client.js';
import { KvProcess, killAllKvProcesses, pause, progress } from './cluster.js';
import { Latencies, describeMachine, machine, median, round, summary } from './stats.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    keys: { type: 'string', default: '20000' },
    clients: { type: 'string', default: '16' },
    inflight: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const keyCount = Number(args.keys);
const clientCount = Number(args.clients);
const inflight = Number(args.inflight);
const value = Buffer.alloc(100, 7);
const keyOf = (i: number) => `key${i}`;
const randomKey = () => keyOf(Math.floor(Math.random() * keyCount));

interface Running {
  coordinator: KvProcess;
  daemons: KvProcess[];
  address: string;
  dir: string;
}

async function startCluster(): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'kv-bench-repl-'));
  const coordinator = new KvProcess('coordinator', ['coordinator', '--port', '0', '--data', join(dir, 'coordinator')]);
  const listening = await coordinator.waitForLog('listening', 30_000);
  const address = String(listening.address);
  const daemons = [1, 2, 3].map((i) => new KvProcess(`daemon-${i}`, ['daemon', '--listen-port', '0', '--coordinator', address, '--data', join(dir, `daemon-${i}`)]));
  await Promise.all(daemons.map((d) => d.waitForLog('registered with the coordinator', 30_000)));
  return { coordinator, daemons, address, dir };
}

async function stopCluster(c: Running): Promise<void> {
  for (const d of c.daemons) {
    d.child.kill('SIGCONT');
    await d.stop('SIGTERM', 10_000);
  }
  await c.coordinator.stop('SIGTERM', 10_000);
  rmSync(c.dir, { recursive: true, force: true });
}

async function load(client: Client, space: string): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < keyCount) await client.put(space, keyOf(next++), { v: value });
    }),
  );
}

async function throughputRound(tolerate: number) {
  const cluster = await startCluster();
  try {
    const setup = await Client.connect(cluster.address);
    await setup.addSpace('bench', { partitions: 16, tolerate });
    await load(setup, 'bench');
    await setup.close();
    const clients = await Promise.all(Array.from({ length: clientCount }, () => Client.connect(cluster.address)));
    const latencies = new Latencies();
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      clients.flatMap((client) =>
        Array.from({ length: inflight }, async () => {
          while (performance.now() < end) {
            const started = performance.now();
            try {
              if (Math.random() < 0.5) await client.get('bench', randomKey());
              else await client.put('bench', randomKey(), { v: value });
              latencies.add(performance.now() - started);
            } catch {
              errors++;
            }
          }
        }),
      ),
    );
    await Promise.all(clients.map((c) => c.close()));
    const s = summary(latencies);
    return { tolerate, opsPerSecond: round(s.count / seconds, 0), p50: s.p50, p99: s.p99, errors };
  } finally {
    await stopCluster(cluster);
  }
}

async function failoverRound(signal: 'SIGKILL' | 'SIGSTOP') {
  const cluster = await startCluster();
  try {
    const client = await Client.connect(cluster.address, { timeoutMs: 30_000 });
    await client.addSpace('bench', { partitions: 16, tolerate: 1 });
    await load(client, 'bench');
    const completions: number[] = [];
    let failed = 0;
    let worst = 0;
    let killedAt = Infinity;
    let stop = false;
    const writers = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const started = performance.now();
        try {
          await client.put('bench', randomKey(), { v: value });
          const now = performance.now();
          completions.push(now);
          if (now > killedAt) worst = Math.max(worst, now - Math.max(started, killedAt));
        } catch {
          failed++;
        }
      }
    });
    await pause(2_000);
    killedAt = performance.now();
    cluster.daemons[1]!.child.kill(signal);
    await pause(signal === 'SIGSTOP' ? 8_000 : 3_000);
    stop = true;
    await Promise.all(writers);
    await client.close();
    const after = completions.filter((t) => t >= killedAt).sort((a, b) => a - b);
    let gap = after.length ? after[0]! - killedAt : Infinity;
    for (let i = 1; i < after.length; i++) gap = Math.max(gap, after[i]! - after[i - 1]!);
    return { signal, longestWriteMs: round(worst, 1), longestStallMs: round(gap, 1), failedWrites: failed, writesAfter: after.length };
  } finally {
    await stopCluster(cluster);
  }
}

async function main() {
  const m = machine();
  progress(`machine: ${describeMachine(m)}`);
  const throughput: Array<Awaited<ReturnType<typeof throughputRound>>> = [];
  for (let r = 1; r <= rounds; r++) {
    for (const tolerate of [0, 1]) {
      progress(`throughput round ${r}, --tolerate ${tolerate}`);
      throughput.push(await throughputRound(tolerate));
    }
  }
  const failovers: Array<Awaited<ReturnType<typeof failoverRound>>> = [];
  for (let r = 1; r <= rounds; r++) {
    for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
      progress(`failover round ${r}, ${signal}`);
      failovers.push(await failoverRound(signal));
    }
  }
  const medianOf = (rows: typeof throughput, f: (r: (typeof throughput)[0]) => number) => median(rows.map(f));
  const byTolerate = [0, 1].map((tolerate) => {
    const rows = throughput.filter((r) => r.tolerate === tolerate);
    return { tolerate, opsPerSecond: medianOf(rows, (r) => r.opsPerSecond), p50: medianOf(rows, (r) => r.p50), p99: medianOf(rows, (r) => r.p99), errors: rows.reduce((s, r) => s + r.errors, 0) };
  });
  const bySignal = (['SIGKILL', 'SIGSTOP'] as const).map((signal) => {
    const rows = failovers.filter((r) => r.signal === signal);
    return { signal, longestWriteMs: median(rows.map((r) => r.longestWriteMs)), longestStallMs: median(rows.map((r) => r.longestStallMs)), failedWrites: rows.reduce((s, r) => s + r.failedWrites, 0) };
  });
  const result = { machine: m, options: { rounds, seconds, keys: keyCount, clients: clientCount, inflight }, throughput, failovers, medians: { byTolerate, bySignal } };
  if (args.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const lines = [
    `machine: ${describeMachine(m)}`,
    `throughput (${clientCount} clients x ${inflight} in flight, 50/50 get/put, ${keyCount} keys, ${seconds} s, ${rounds} rounds each):`,
    '  tolerate  ops/s (median)  p50 ms  p99 ms  errors  rounds (ops/s)',
    ...byTolerate.map((b) => `  ${String(b.tolerate).padEnd(8)}  ${String(b.opsPerSecond).padStart(14)}  ${String(b.p50).padStart(6)}  ${String(b.p99).padStart(6)}  ${String(b.errors).padStart(6)}  ${throughput.filter((r) => r.tolerate === b.tolerate).map((r) => r.opsPerSecond).join(', ')}`),
    `  tolerate 1 / tolerate 0 throughput: ${(byTolerate[1]!.opsPerSecond / byTolerate[0]!.opsPerSecond).toFixed(2)}`,
    'failover (--tolerate 1, 8 sequential writers; medians of rounds):',
    '  signal   longest write ms  longest stall ms  failed writes  rounds (stall ms)',
    ...bySignal.map((b) => `  ${b.signal.padEnd(7)}  ${String(b.longestWriteMs).padStart(16)}  ${String(b.longestStallMs).padStart(16)}  ${String(b.failedWrites).padStart(13)}  ${failovers.filter((r) => r.signal === b.signal).map((r) => r.longestStallMs).join(', ')}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  await killAllKvProcesses();
  process.exitCode = 1;
}

// What the etcd store costs a config change (issue 14): one coordinator on the local store (LevelDB in its data
// dir) and, side by side in the same run, one on a 3-member etcd on loopback (every save a fenced txn), each with
// the same daemons; add-space and rm-space one after the other, one at a time, timed at the client. Stores
// alternate within each round, so a busy moment of the machine falls on both.
//
//   node dist/bench/run.js config-store [--changes 200] [--rounds 2] [--partitions 4] [--daemons 3] [--json]
//
// --changes counts both kinds: 200 is 100 add-space and 100 rm-space.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Client } from '../shared/client.js';
import { startEtcd, type EtcdCluster } from '../test/helpers/etcd.js';
import { KvProcess, killAllKvProcesses, pause, progress } from './cluster.js';
import { processStartMs, startEtcdCoordinator } from './replicated.js';
import { Latencies, build, describeMachine, machine, median, round, summary } from './stats.js';

const { values: args } = parseArgs({
  options: {
    changes: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '2' },
    partitions: { type: 'string', default: '4' },
    daemons: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const changes = Number(args.changes);
const rounds = Number(args.rounds);
const partitions = Number(args.partitions);
const daemonCount = Number(args.daemons);
const ttlSeconds = 5;
const availableWaitMs = 30_000;
const stores = ['local', 'etcd'] as const;
type Store = (typeof stores)[number];

interface Run {
  store: Store;
  round: number;
  add: ReturnType<typeof summary>;
  rm: ReturnType<typeof summary>;
  changesPerSecond: number;
}

async function startCoordinator(store: Store, etcd: EtcdCluster, dir: string): Promise<string> {
  if (store === 'etcd') {
    const c = await startEtcdCoordinator('coordinator', { endpoints: etcd.endpoints, prefix: `/kv/bench-config-store-${randomBytes(4).toString('hex')}`, ttlSeconds });
    await c.proc.waitForLog('won the leader election', processStartMs);
    return c.address;
  }
  const proc = new KvProcess('coordinator', ['coordinator', '--port', '0', '--data', join(dir, 'coordinator')]);
  return String((await proc.waitForLog('listening', processStartMs)).address);
}

async function measure(store: Store, r: number, etcd: EtcdCluster): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), `kv-bench-config-store-${store}-`));
  let client: Client | undefined;
  try {
    const address = await startCoordinator(store, etcd, dir);
    for (let i = 0; i < daemonCount; i++) new KvProcess(`daemon-${i + 1}`, ['daemon', '--listen-port', '0', '--coordinator', address, '--data', join(dir, `daemon-${i + 1}`)]);
    client = await Client.connect(address);
    const deadline = performance.now() + availableWaitMs;
    while ((await client.showConfig()).servers.filter((s) => s.state === 'available').length < daemonCount) {
      if (performance.now() > deadline) throw new Error(`${daemonCount} daemons were not available within ${availableWaitMs} ms`);
      await pause(50);
    }
    const add = new Latencies();
    const rm = new Latencies();
    const started = performance.now();
    for (let i = 0; i < changes / 2; i++) {
      const t0 = performance.now();
      await client.addSpace(`s${i}`, { partitions });
      const t1 = performance.now();
      await client.rmSpace(`s${i}`);
      add.add(t1 - t0);
      rm.add(performance.now() - t1);
    }
    const seconds = (performance.now() - started) / 1000;
    return { store, round: r, add: summary(add), rm: summary(rm), changesPerSecond: round(changes / seconds, 1) };
  } finally {
    await client?.close();
    await killAllKvProcesses();
    rmSync(dir, { recursive: true, force: true });
  }
}

const etcd = await startEtcd();
const machineBefore = machine();
const startedAt = new Date();
try {
  const runs: Run[] = [];
  for (let r = 1; r <= rounds; r++) {
    // Which store goes first alternates, so neither always has the warmer (or the busier) machine.
    for (const store of r % 2 === 1 ? stores : [...stores].reverse()) {
      const run = await measure(store, r, etcd);
      runs.push(run);
      progress(`round ${r}, ${store}: ${JSON.stringify(run)}`);
    }
  }
  const machineAfter = machine();
  if (args.json) {
    process.stdout.write(JSON.stringify({ build: build(), machine: machineBefore, loadAfter: machineAfter.loadAverage, runs }, null, 2) + '\n');
  } else {
    const of = (store: Store, pick: (r: Run) => number) => round(median(runs.filter((r) => r.store === store).map(pick)), 2);
    const row = (store: Store) =>
      `| ${store} | ${of(store, (r) => r.add.p50)} | ${of(store, (r) => r.add.p99)} | ${of(store, (r) => r.rm.p50)} | ${of(store, (r) => r.rm.p99)} | ${of(store, (r) => r.changesPerSecond)} | ${runs.filter((r) => r.store === store).map((r) => r.changesPerSecond).join(', ')} |`;
    const ratios = Array.from({ length: rounds }, (_, i) => {
      const inRound = (store: Store) => runs.find((r) => r.round === i + 1 && r.store === store)!.changesPerSecond;
      return round(inRound('etcd') / inRound('local'), 2);
    });
    process.stdout.write([
      `config-store: ${changes} changes per run (${changes / 2} add-space + ${changes / 2} rm-space, ${partitions} partitions each), one at a time, ${daemonCount} daemons, ${rounds} rounds, stores alternating`,
      `build ${build()}, ${startedAt.toISOString()}; machine: ${describeMachine(machineBefore)}; load average ${machineBefore.loadAverage.join(' ')} before, ${machineAfter.loadAverage.join(' ')} after`,
      '',
      '| store | add-space p50 ms | add-space p99 ms | rm-space p50 ms | rm-space p99 ms | changes/s | changes/s, each round |',
      '|---|--:|--:|--:|--:|--:|---|',
      row('local'),
      row('etcd'),
      '',
      `etcd's changes/s ÷ local's, each round (side by side): ${ratios.join(', ')}; median ${round(median(ratios), 2)}`,
      'medians of the rounds',
      '',
    ].join('\n'));
  }
} finally {
  await killAllKvProcesses();
  await etcd.close();
}

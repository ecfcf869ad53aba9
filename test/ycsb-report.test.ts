// bench/ycsb/report.ts: which measured phase stands for a system with --rounds, how issue 15's targets are judged
// on the rounds' side-by-side ratios, the generator ceiling and its warning, and the table's columns. Pure;
// results are plain data.
import t from 'tap';
import {
  evaluateTargets,
  generatorCeiling,
  medianSystems,
  roundsTable,
  table,
  type PhaseResult,
  type SystemResult,
  type YcsbOptions,
  type YcsbResults,
} from '../bench/ycsb/report.js';
import type { WorkloadName } from '../bench/ycsb/workload.js';

const latency = (p99: number) => ({ count: 1, p50: 1, p99, p999: p99, max: p99 });

const phase = (workload: WorkloadName, opsPerSecond: number, p99 = 5): PhaseResult => ({
  workload,
  label: workload === 'load' ? 'load' : workload.toUpperCase(),
  seconds: 10,
  ops: opsPerSecond * 10,
  opsPerSecond,
  latencyMs: latency(p99),
  readLatencyMs: latency(p99),
  updateLatencyMs: latency(p99),
  errors: 0,
  errorsByCode: {},
  firstErrors: [],
  cpu: { generatorMicrosPerOp: 3, serversMicrosPerOp: 12.5, processes: [], machineBusyPercent: undefined, otherProcessesPercent: undefined },
  opsPerWholeSecond: [],
  cdf: [],
});

/** A system that ran the load phase and workload C at these ops/s. */
const system = (name: string, load: number, c: number, p99 = 5): SystemResult => ({
  name,
  label: name,
  status: 'ok',
  phases: [phase('load', load, p99), phase('c', c, p99)],
  seconds: 30,
});

const options: YcsbOptions = {
  systems: ['kv', 'redis'],
  workloads: ['load', 'c'],
  keys: 100_000,
  valueBytes: 100,
  concurrency: 64,
  generators: 2,
  seconds: 10,
  warmupSeconds: 2,
  distribution: 'zipfian',
  partitions: 16,
  rounds: 3,
  cpuProfileDir: undefined,
  write: false,
  json: false,
};

// Round 2 is slow for kv and round 3 slow for Redis: kv's median ops/s and Redis's come from different rounds, and
// on C kv's median ÷ Redis's median (95,000 ÷ 100,000 = 0.95) is not the median of the rounds' ratios (1.00).
const rounds = [
  [system('kv', 60_000, 100_000, 4), system('redis', 100_000, 100_000)],
  [system('kv', 50_000, 90_000, 6), system('redis', 100_000, 100_000)],
  [system('kv', 70_000, 95_000, 9), system('redis', 80_000, 80_000)],
];

const base = { command: '', date: '', build: '', machine: {} as never, machineAtEnd: {} as never, options, totalSeconds: 0 };
const target = (targets: ReturnType<typeof evaluateTargets>, text: string) => targets.find((x) => x.target.includes(text))!;

t.test('each workload is represented by the round with the median ops/s, with that round\'s latencies', async (t) => {
  const [kv, redis] = medianSystems(rounds);
  t.equal(kv!.phases.find((p) => p.workload === 'load')!.opsPerSecond, 60_000);
  t.equal(kv!.phases.find((p) => p.workload === 'load')!.latencyMs.p99, 4, 'the latencies of the same round');
  t.equal(kv!.phases.find((p) => p.workload === 'c')!.opsPerSecond, 95_000, 'C\'s median is another round than the load\'s');
  t.equal(redis!.phases.find((p) => p.workload === 'c')!.opsPerSecond, 100_000);
  t.equal(kv!.seconds, 90, 'the time of every round together');
});

t.test('a system that failed in any round is reported as failed', async (t) => {
  const failed: SystemResult = { ...system('redis', 1, 1), status: 'failed', reason: 'crashed', phases: [phase('c', 4_000)] };
  const [, redis] = medianSystems([rounds[0]!, [rounds[1]![0]!, failed]]);
  t.equal(redis!.status, 'failed');
  t.equal(redis!.reason, 'crashed');
});

t.test('targets are judged on the median of the rounds\' side-by-side ratios', async (t) => {
  const targets = evaluateTargets({ ...base, systems: medianSystems(rounds), rounds });
  // C: 1.00×, 0.90×, 1.19× → 1.00×; load: 0.60×, 0.50×, 0.88× → 0.60×
  const reads = target(targets, 'kv reads');
  t.equal(reads.verdict, 'met');
  t.match(reads.detail, /C 1\.00× \(2 of 3 rounds/);
  const writes = target(targets, 'kv writes');
  t.equal(writes.verdict, 'met');
  t.match(writes.detail, /load 0\.60× \(2 of 3 rounds/);

  const worse = rounds.map(([kv, peer], i) => [i === 0 ? system('kv', 60_000, 85_000) : kv!, peer!]);
  const notMet = target(evaluateTargets({ ...base, systems: medianSystems(worse), rounds: worse }), 'kv reads');
  t.equal(notMet.verdict, 'NOT met', 'C: 0.85×, 0.90×, 1.19× → 0.90×');

  const single = target(evaluateTargets({ ...base, options: { ...options, rounds: 1 }, systems: rounds[1]! }), 'kv reads');
  t.equal(single.verdict, 'NOT met', 'one round: its own ratio (0.90×)');
  t.notMatch(single.detail, /rounds/);
});

t.test('a target between systems that did not both run is n/a, saying which did not', async (t) => {
  const targets = evaluateTargets({ ...base, systems: medianSystems(rounds), rounds });
  const durable = target(targets, '10× etcd');
  t.equal(durable.verdict, 'n/a');
  t.match(durable.detail, /kv-durable and etcd did not run the load phase/);
  // Without load in --workloads the load phase runs but is not kept.
  const cOnly = rounds.map((r) => r.map((s) => ({ ...s, phases: s.phases.filter((p) => p.workload === 'c') })));
  const withoutLoad = evaluateTargets({ ...base, options: { ...options, workloads: ['c'] }, systems: medianSystems(cOnly), rounds: cOnly });
  t.match(target(withoutLoad, 'kv writes').detail, /load phase not reported/);

  const systems = [system('kv-durable', 20_000, 1), system('etcd', 1_000, 1), system('redis-always', 25_000, 1), system('kv', 100_000, 1), system('kv-tolerate1', 50_000, 1)];
  const all = evaluateTargets({ ...base, options: { ...options, rounds: 1 }, systems });
  t.equal(target(all, '10× etcd').verdict, 'met', '20.0×');
  t.equal(target(all, 'appendfsync always').verdict, 'NOT met', '0.80×');
  t.equal(target(all, 'kv-tolerate1').verdict, 'NOT met', '0.50× of kv');
});

t.test('kv\'s p99 is judged on every workload reported, at 64 in flight only', async (t) => {
  const targets = evaluateTargets({ ...base, systems: medianSystems(rounds), rounds });
  const p99 = target(targets, 'p99');
  t.equal(p99.verdict, 'NOT met', 'C\'s median round has 9 ms');
  t.match(p99.detail, /load 4\.00 ms, C 9\.00 ms/, 'p99 of the median rounds');
  const fast = [[system('kv', 1, 1, 5), system('redis', 1, 1)]];
  t.equal(target(evaluateTargets({ ...base, systems: fast[0]!, options: { ...options, rounds: 1 } }), 'p99').verdict, 'met', '5 ms is within');
  const other = target(evaluateTargets({ ...base, systems: fast[0]!, options: { ...options, rounds: 1, concurrency: 32 } }), 'p99');
  t.equal(other.verdict, 'n/a');
  t.match(other.detail, /judged at --concurrency 64, not 32/);
});

t.test('the generator ceiling is the null system\'s ops/s; a system above half of it is warned about', async (t) => {
  const systems = [system('null', 500_000, 400_000), system('kv', 100_000, 100_000), system('redis', 150_000, 250_000)];
  const { lines, warnings } = generatorCeiling({ systems, options });
  t.same(lines, [
    'generator ceiling on load: 500,000 ops/s with 2 generator processes; the fastest system (Redis) reached 30% of it',
    'generator ceiling on C: 400,000 ops/s with 2 generator processes; the fastest system (Redis) reached 63% of it',
    "the ceiling is the driver alone (a store that answers at once); each system's client library adds to its generators' CPU µs/op",
  ]);
  t.equal(warnings.length, 1);
  t.match(warnings[0], /^Redis on C reached 63% of the generator ceiling/);
  t.same(generatorCeiling({ systems: systems.slice(1), options }).lines, ['generator ceiling: not measured (add null to --systems)']);
});

t.test('generators busy nearly a whole core each are warned about, whatever the ceiling', async (t) => {
  const busy = (percent: number) => [1, 2].map((i) => ({ name: `generator ${i}`, pid: i, cpuSeconds: 1, cpuPercent: percent }));
  const kv = system('kv', 100_000, 100_000);
  kv.phases[1] = { ...kv.phases[1]!, cpu: { ...kv.phases[1]!.cpu, processes: [...busy(95), { name: 'daemon :2012', pid: 3, cpuSeconds: 1, cpuPercent: 100 }] } };
  kv.phases[0] = { ...kv.phases[0]!, cpu: { ...kv.phases[0]!.cpu, processes: busy(80) } };
  const { warnings } = generatorCeiling({ systems: [kv], options });
  t.same(warnings, ['kv, tolerate 0 on C: its generators were busy 95% of a core each: they were the limit (more --generators, given the cores)']);
});

t.test('the table has the servers\' and the generators\' CPU per operation next to ops/s, and the ceiling', async (t) => {
  const systems = [system('null', 500_000, 400_000), ...rounds[0]!];
  const results: YcsbResults = { ...base, options: { ...options, rounds: 1 }, systems, targets: [] };
  const text = table({ ...results, targets: evaluateTargets(results) });
  t.match(text, /\| workload \| system \| ops\/s \| servers CPU µs\/op \| generators CPU µs\/op \| p50 ms/);
  t.match(text, /\| C \| kv, tolerate 0 \| 100,000 \| 12\.5 \| 3\.0 \| 1\.00 \| 4\.00 \|/);
  t.match(text, /\| C \| Redis \| 100,000 \| 12\.5 \| 3\.0 \|.* \| 1\.00× \|/);
  t.match(text, /\| C \| null \(generator ceiling\) \| 400,000 \|.* \| – \|\n/, 'no ratio to the ceiling');
  t.match(text, /- generator ceiling on C: 400,000 ops\/s with 2 generator processes/);
});

t.test('the rounds table lists every round\'s ratio', async (t) => {
  const text = roundsTable({ systems: medianSystems(rounds), rounds, options });
  t.match(text, /\| 2 \| C \| 90,000 \| 0\.90× \|/);
  t.match(text, /\| 3 \| load \| 70,000 \| 0\.88× \|/);
  t.equal(roundsTable({ systems: rounds[0]!, options }), '', 'nothing without rounds');
});

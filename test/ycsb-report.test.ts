// bench/ycsb/report.ts with --rounds: which measured phase stands for a system, and how the targets are judged on
// the rounds' side-by-side ratios. Pure; results are plain data.
import t from 'tap';
import { evaluateTargets, medianSystems, roundsTable, type PhaseResult, type SystemResult, type YcsbOptions } from '../bench/ycsb/report.js';
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
  cpu: { benchProcessMicrosPerOp: 1, serversMicrosPerOp: 1, processes: [], machineBusyPercent: undefined, otherProcessesPercent: undefined },
  opsPerWholeSecond: [],
  cdf: [],
});

const system = (name: string, a: number, c: number, p99 = 5): SystemResult => ({
  name,
  label: name,
  status: 'ok',
  phases: [phase('a', a, p99), phase('c', c, p99)],
  seconds: 30,
});

const options: YcsbOptions = {
  systems: ['kv', 'etcd'],
  workloads: ['a', 'c'],
  keys: 100_000,
  valueBytes: 100,
  concurrency: 64,
  seconds: 10,
  warmupSeconds: 2,
  distribution: 'zipfian',
  partitions: 16,
  rounds: 3,
  cpuProfileDir: undefined,
  write: false,
  json: false,
};

// Round 2 is slow for kv and round 3 slow for etcd: kv's median ops/s and etcd's come from different rounds, and
// kv ÷ median etcd (50,000 ÷ 4,000 = 12.5) is not the median of the rounds' ratios (10.0).
const rounds = [
  [system('kv', 50_000, 100_000, 4), system('etcd', 5_000, 5_000)],
  [system('kv', 40_000, 90_000, 6), system('etcd', 5_000, 5_000)],
  [system('kv', 60_000, 95_000, 9), system('etcd', 4_000, 4_500)],
];

t.test('each workload is represented by the round with the median ops/s, with that round\'s latencies', async (t) => {
  const [kv, etcd] = medianSystems(rounds);
  t.equal(kv!.phases.find((p) => p.workload === 'a')!.opsPerSecond, 50_000);
  t.equal(kv!.phases.find((p) => p.workload === 'a')!.latencyMs.p99, 4, 'the latencies of the same round');
  t.equal(kv!.phases.find((p) => p.workload === 'c')!.opsPerSecond, 95_000, 'C\'s median is another round than A\'s');
  t.equal(etcd!.phases.find((p) => p.workload === 'a')!.opsPerSecond, 5_000);
  t.equal(kv!.seconds, 90, 'the time of every round together');
});

t.test('a system that failed in any round is reported as failed', async (t) => {
  const failed: SystemResult = { ...system('etcd', 1, 1), status: 'failed', reason: 'crashed', phases: [phase('a', 4_000)] };
  const [, etcd] = medianSystems([rounds[0]!, [rounds[1]![0]!, failed]]);
  t.equal(etcd!.status, 'failed');
  t.equal(etcd!.reason, 'crashed');
});

t.test('targets are judged on the median of the rounds\' side-by-side ratios', async (t) => {
  const base = { command: '', date: '', build: '', machine: {} as never, machineAtEnd: {} as never, options, totalSeconds: 0 };
  const targets = evaluateTargets({ ...base, systems: medianSystems(rounds), rounds });
  const etcd = targets.find((x) => x.target.includes('etcd'))!;
  // A: 10.0×, 8.0×, 15.0× → median 10.0×; C: 20×, 18×, 21.1× → 20.0×
  t.equal(etcd.verdict, 'met');
  t.match(etcd.detail, /A 10\.0× \(2 of 3 rounds\)/);
  t.match(etcd.detail, /C 20\.0× \(3 of 3 rounds\)/);

  const worse = rounds.map(([kv, peer], i) => [i === 0 ? system('kv', 45_000, 100_000) : kv!, peer!]);
  const notMet = evaluateTargets({ ...base, systems: medianSystems(worse), rounds: worse }).find((x) => x.target.includes('etcd'))!;
  t.equal(notMet.verdict, 'NOT met', 'A: 9.0×, 8.0×, 15.0× → 9.0×');

  const p99 = targets.find((x) => x.target.includes('p99'))!;
  t.match(p99.detail, /A 4\.00 ms/, 'p99 of the median round');

  const single = evaluateTargets({ ...base, options: { ...options, rounds: 1 }, systems: rounds[1]! }).find((x) => x.target.includes('etcd'))!;
  t.equal(single.verdict, 'NOT met', 'one round: its own ratio (8.0×)');
  t.notMatch(single.detail, /rounds/);
});

t.test('the rounds table lists every round\'s ratio', async (t) => {
  const text = roundsTable({ systems: medianSystems(rounds), rounds, options });
  t.match(text, /\| 2 \| A \| 40,000 \| 8\.00× \|/);
  t.match(text, /\| 3 \| C \| 95,000 \| 21\.1× \|/);
  t.equal(roundsTable({ systems: rounds[0]!, options }), '', 'nothing without rounds');
});

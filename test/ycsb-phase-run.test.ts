// bench/ycsb/phase-run.ts: the generators' runs of one phase merged into one, and the work split among them.
import t from 'tap';
import { firstErrorsMax, mergeRuns, ranges, shares, type GeneratorRun } from '../bench/ycsb/phase-run.js';
import { percentile } from '../bench/stats.js';

const run = (over: Partial<GeneratorRun>): GeneratorRun => ({
  startedAtMs: 1_000_000,
  seconds: 2,
  reads: new Float64Array(),
  updates: new Float64Array(),
  errors: [],
  firstErrors: [],
  perSecond: [],
  cpuSeconds: 0,
  ...over,
});

t.test('latencies, ops, errors and CPU of every generator are in the merged run', async (t) => {
  const merged = mergeRuns([
    run({ reads: Float64Array.of(1, 2), updates: Float64Array.of(10), errors: [['TIMEOUT', 2]], perSecond: [2, 1], cpuSeconds: 0.5 }),
    run({ reads: Float64Array.of(3), updates: Float64Array.of(20, 30), errors: [['TIMEOUT', 1], ['NOT_FOUND', 4]], perSecond: [1, 2], cpuSeconds: 0.25 }),
  ]);
  t.equal(merged.all.length, 6);
  t.equal(merged.reads.length, 3);
  t.equal(merged.updates.length, 3);
  t.same([...merged.all.sorted()], [1, 2, 3, 10, 20, 30]);
  t.equal(percentile(merged.reads.sorted(), 1), 3);
  t.same(Object.fromEntries(merged.errors), { TIMEOUT: 3, NOT_FOUND: 4 });
  t.same(merged.perSecond, [3, 3]);
  t.same(merged.generators, [
    { cpuSeconds: 0.5, ops: 3 },
    { cpuSeconds: 0.25, ops: 3 },
  ]);
});

t.test('the phase lasts from the first start to the last end, and a late start counts in its own second', async (t) => {
  const merged = mergeRuns([run({ seconds: 2, perSecond: [5, 5] }), run({ startedAtMs: 1_001_500, seconds: 2, perSecond: [7, 7, 1] })]);
  t.equal(merged.seconds, 3.5);
  t.same(merged.perSecond, [5, 12, 7, 1], 'the second generator started in the first one\'s second 1');
  t.same(mergeRuns([run({ perSecond: [5, 5, 1] })], 2).perSecond, [5, 5], 'cut to the whole seconds of a timed phase');
});

t.test('the first errors are kept up to the bound, each saying which generator it came from', async (t) => {
  const many = Array.from({ length: 8 }, (_, i) => `put user${i}: TIMEOUT`);
  const merged = mergeRuns([run({ firstErrors: many }), run({ firstErrors: many })]);
  t.equal(merged.firstErrors.length, firstErrorsMax);
  t.equal(merged.firstErrors[0], 'generator 1: put user0: TIMEOUT');
  t.equal(merged.firstErrors[9], 'generator 2: put user1: TIMEOUT');
  t.equal(mergeRuns([run({ firstErrors: ['x'] })]).firstErrors[0], 'x', 'one generator: no prefix');
  t.throws(() => mergeRuns([]), /no generator run/);
});

t.test('requests in flight and keys are split evenly, every one exactly once', async (t) => {
  t.same(shares(64, 3), [22, 21, 21]);
  t.same(shares(2, 2), [1, 1]);
  t.same(ranges(10, 3), [
    { from: 0, to: 4 },
    { from: 4, to: 7 },
    { from: 7, to: 10 },
  ]);
  t.same(ranges(5, 1), [{ from: 0, to: 5 }]);
});

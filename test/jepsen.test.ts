// Jepsen-style runs: real processes, client processes recording histories, one nemesis per subtest, and the
// linearizability checker on the history of every key. A run passes only if the history is linearizable; the
// kv of today is known to fail several of these (see the report each prints), which is what they are for.
// KV_JEPSEN_SECONDS and KV_JEPSEN_SEED change the runs; KV_JEPSEN_TRACE=1 prints the timeline as it happens,
// KV_JEPSEN_WORKER_DEBUG=1 each worker's view of the config, KV_JEPSEN_DUMP=file every history before checking.
import t, { type Test } from 'tap';
import { describeRun, runJepsen, type JepsenReport } from './jepsen/run.js';

// tap preloads its process-tracking hook into every child through NODE_OPTIONS; coverage is off, and the hook
// doubles the start time of each of the dozen processes a run starts (restarts within a fault included).
delete process.env.NODE_OPTIONS;

const seconds = Number(process.env.KV_JEPSEN_SECONDS ?? 8);
const seed = Number(process.env.KV_JEPSEN_SEED ?? 1);
/** About ten seconds of search per key at most, so that a hard history cannot stall the suite. */
const maxStates = 1_000_000;

/** A run that completes almost nothing proves nothing, whatever the verdict. */
const minOkOps = 200;

function assertRun(t: Test, r: JepsenReport) {
  t.comment(describeRun(r));
  for (const note of r.nemesisReport.notes) t.comment(`  ${note}`);
  t.ok(r.okOps >= minOkOps, `the workload did something: ${r.okOps} ok ops of ${r.ops} (at least ${minOkOps})`);
  t.equal(r.keys, 6, 'every key was checked');
  if (r.nemesis !== 'none') {
    t.ok(r.nemesisReport.cycles >= 1, `the nemesis ran ${r.nemesisReport.cycles} fault cycles`);
    t.ok(r.nemesisReport.effective, 'and its fault had the intended effect');
  }
  const explain = r.verdict === 'linearizable' ? '' : `\n${r.summary.slice(0, 6_000)}\ntimeline:\n${r.timeline.join('\n')}`;
  t.equal(r.verdict, 'linearizable',
    `linearizable: ${r.checkedOps} of ${r.ops} ops on ${r.keys} keys checked` +
      (r.historyFile ? ` (history kept in ${r.historyFile})` : '') + explain);
}

for (const nemesis of ['none', 'join-leave', 'kill', 'pause-short', 'pause-long', 'coordinator-restart', 'pause-tail-after-restart', 'coordinator-cut', 'peer-cut', 'leader-kill', 'leader-pause']) {
  t.test(`${nemesis === 'none' ? 'calm (no nemesis)' : nemesis}: per-key linearizable`, async (t) => {
    assertRun(t, await runJepsen(t, { nemesis, seconds, seed, maxStates }));
  });
}

// npm run jepsen -- --seeds N --seconds S [--nemesis name,name]: every nemesis (or those named) once per seed,
// one line per run and a table at the end; exit 1 if any run was not linearizable (or could not be told).
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { TestLike } from '../helpers/cluster.js';
import { nemeses, nemesisNamed, none } from './nemesis.js';
import { describeRun, runJepsen, type JepsenReport } from './run.js';

/** tap's teardown, outside tap: what a run registered is undone, last first, when it ends. */
class Teardowns implements TestLike {
  private readonly fns: Array<() => unknown> = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.reverse()) {
      try {
        await fn();
      } catch (error) {
        process.stderr.write(`teardown: ${(error as Error).message}\n`);
      }
    }
  }
}

const argv = await yargs(hideBin(process.argv))
  .scriptName('jepsen')
  .option('seeds', { type: 'number', default: 1, describe: 'runs per nemesis, with seeds 1..N' })
  .option('seconds', { type: 'number', default: 10, describe: 'seconds of workload per run' })
  .option('nemesis', { type: 'string', describe: `comma-separated, of: ${[none, ...nemeses].map((n) => n.name).join(', ')} (default: all but none)` })
  .option('verbose', { type: 'boolean', default: false, describe: 'print the timeline and the checker summary of every run' })
  .epilog([none, ...nemeses].map((n) => `${n.name}: ${n.doc}`).join('\n'))
  .strict()
  .help()
  .parseAsync();

const chosen = argv.nemesis ? argv.nemesis.split(',').map((name) => nemesisNamed(name.trim())) : nemeses;
const reports: JepsenReport[] = [];
const broken: Array<{ nemesis: string; seed: number; error: string }> = [];
for (const nemesis of chosen) {
  for (let seed = 1; seed <= argv.seeds; seed++) {
    const t = new Teardowns();
    try {
      const r = await runJepsen(t, { nemesis: nemesis.name, seconds: argv.seconds, seed });
      reports.push(r);
      console.log(describeRun(r));
      if (argv.verbose || r.verdict !== 'linearizable') {
        if (r.verdict !== 'linearizable') console.log(r.summary.split('\n').slice(0, 60).join('\n'));
        if (argv.verbose) console.log(r.timeline.map((l) => `  ${l}`).join('\n'));
      }
    } catch (error) {
      // A run that could not complete (the cluster never healed, a worker crashed) has no verdict: it is reported
      // and counts as a failure, and the other runs go on.
      const message = (error as Error).message;
      broken.push({ nemesis: nemesis.name, seed, error: message });
      console.log(`${nemesis.name} seed=${seed}: run failed: ${message}`);
    } finally {
      await t.run();
    }
  }
}

const pad = (s: string | number, n: number) => String(s).padEnd(n);
console.log('\n' + [pad('nemesis', 26), pad('runs', 5), pad('ok ops', 9), pad('linearizable', 13), pad('violations', 11), pad('unknown', 8), 'broken'].join(''));
for (const nemesis of chosen) {
  const mine = reports.filter((r) => r.nemesis === nemesis.name);
  const count = (v: JepsenReport['verdict']) => mine.filter((r) => r.verdict === v).length;
  console.log([
    pad(nemesis.name, 26), pad(mine.length, 5), pad(mine.reduce((s, r) => s + r.okOps, 0), 9),
    pad(count('linearizable'), 13), pad(count('not linearizable'), 11), pad(count('unknown'), 8),
    broken.filter((b) => b.nemesis === nemesis.name).length,
  ].join(''));
}
const bad = reports.filter((r) => r.verdict !== 'linearizable');
for (const r of bad) console.log(`${r.nemesis} seed=${r.seed}: ${r.verdict}; history in ${r.historyFile}`);
process.exit(bad.length > 0 || broken.length > 0 ? 1 : 0);

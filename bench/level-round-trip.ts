// What one LevelDB call costs through classic-level, one call at a time (the thread-pool thread sleeps between
// them, as it does in a daemon whose one group commit in flight has just finished):
//
//   node dist/bench/level-round-trip.js [--calls 20000] [--rounds 3] [--json]
//   npm run bench -- level-round-trip
//
// For each kind of call: wall µs per call, CPU µs per call (every thread of this process: the event loop, the
// thread pool, LevelDB), and the µs the call itself blocks the event loop before it returns its promise (the
// hand-off to the thread pool). Medians over the rounds. The daemons read with getSync and commit writes in
// chained batches grouped across partitions; this is the price those choices are measured against.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openLevel, type Level } from '../shared/level.js';
import { describeMachine, machine, median } from './stats.js';

const { values: args } = parseArgs({
  options: {
    calls: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const calls = Number(args.calls);
const rounds = Number(args.rounds);
const keys = 100_000;
const value = Buffer.alloc(110, 7);
const keyOf = (i: number) => Buffer.from(`key${i % keys}`);

type Call = (db: Level, i: number) => unknown;
const batchOf = (puts: number): Call => (db, i) => {
  const batch = db.batch();
  for (let j = 0; j < puts; j++) batch.put(keyOf(i * puts + j), value);
  return batch.write();
};
const kinds: Array<[string, Call]> = [
  ['getSync', (db, i) => db.getSync(keyOf(i))],
  ['get (async)', (db, i) => db.get(keyOf(i))],
  ['chained batch, 1 put', batchOf(1)],
  ['chained batch, 5 puts', batchOf(5)],
  ['chained batch, 20 puts', batchOf(20)],
];

async function measure(db: Level, call: Call): Promise<{ wallUs: number; cpuUs: number; blockingUs: number }> {
  let blocking = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const before = performance.now();
    const result = call(db, i);
    blocking += performance.now() - before;
    await result;
  }
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wallUs: (wall * 1000) / calls, cpuUs: (used.user + used.system) / calls, blockingUs: (blocking * 1000) / calls };
}

const dir = mkdtempSync(join(tmpdir(), 'kv-level-'));
const db = await openLevel(dir);
try {
  const fill = db.batch();
  for (let i = 0; i < keys; i++) fill.put(keyOf(i), value);
  await fill.write();
  const results: Record<string, Array<{ wallUs: number; cpuUs: number; blockingUs: number }>> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, call] of kinds) (results[name] ??= []).push(await measure(db, call));
  }
  const rows = Object.entries(results).map(([name, runs]) => ({
    call: name,
    wallUs: median(runs.map((r) => r.wallUs)),
    cpuUs: median(runs.map((r) => r.cpuUs)),
    blockingUs: median(runs.map((r) => r.blockingUs)),
  }));
  if (args.json) {
    process.stdout.write(JSON.stringify({ machine: machine(), calls, rounds, rows }, null, 2) + '\n');
  } else {
    const f = (v: number) => v.toFixed(1);
    process.stdout.write(`${describeMachine(machine())}\n${calls} calls per kind, one at a time, ${rounds} rounds (medians); ${keys} keys of ${value.length} bytes\n\n`);
    process.stdout.write('| call | wall µs | CPU µs (all threads) | event loop blocked µs |\n|---|--:|--:|--:|\n');
    for (const r of rows) process.stdout.write(`| ${r.call} | ${f(r.wallUs)} | ${f(r.cpuUs)} | ${f(r.blockingUs)} |\n`);
  }
} finally {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
}

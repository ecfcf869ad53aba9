// One run seen through the daemons' own metrics: `kv up --metrics-port`, a closed-loop load of puts and gets, a
// backup-manager run in the middle; every daemon's /metrics scraped each --interval-ms. The chart puts throughput
// (from kv_requests_total), the time writes were held for the backup (kv_frozen_seconds_total) and the fsyncs
// (kv_fsyncs_total, with --durable) on one time axis, so what a backup does to a running cluster shows in one
// picture, measured by the servers rather than by this load generator.
//
//   node dist/bench/run.js timeline [--keys 20000] [--seconds 20] [--backup-at 8] [--concurrency 32]
//                                   [--interval-ms 250] [--durable] [--no-write]
//
// Prints one line per interval and a summary; unless --no-write, writes bench/charts/timeline.svg and
// bench/results/timeline.json. The client's own count of answered operations is printed next to the daemons'
// (they must agree: a check that the counters count what was done). Exit code 0 only when no operation failed.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { TopLevelSpec } from 'vega-lite';
import { Client } from '../shared/client.js';
import { metricValue, scrapeMetrics, type Sample } from '../shared/prometheus-text.js';
import { writeSvg } from './charts.js';
import { freePorts, KvProcess, progress, startCluster, stopCluster, waitUntilUp } from './cluster.js';
import { build, describeMachine, machine, repoRoot, round } from './stats.js';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '20' },
    'backup-at': { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '32' },
    'interval-ms': { type: 'string', default: '250' },
    durable: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
  },
});
const keys = Number(args.keys);
const seconds = Number(args.seconds);
const backupAt = Number(args['backup-at']);
const concurrency = Number(args.concurrency);
const intervalMs = Number(args['interval-ms']);
const daemons = 3;
const space = 'timeline';

interface Point {
  /** Seconds since the load began, at the end of the interval. */
  t: number;
  putsPerSecond: number;
  getsPerSecond: number;
  errorsPerSecond: number;
  /** Writes held for backups during the interval, summed over daemons (counted when each daemon thaws). */
  frozenMs: number;
  fsyncsPerSecond: number;
  meanGroup: number;
}

/** The counters this bench follows, summed over every daemon's scrape. */
function totals(scrapes: Sample[][]) {
  const sum = (name: string, labels: Record<string, string> = {}) => scrapes.reduce((a, s) => a + metricValue(s, name, labels), 0);
  const requests = sum('kv_requests_total');
  const ok = sum('kv_requests_total', { code: 'ok' });
  return {
    puts: sum('kv_requests_total', { type: 'put', code: 'ok' }),
    gets: sum('kv_requests_total', { type: 'get', code: 'ok' }),
    errors: requests - ok,
    frozenSeconds: sum('kv_frozen_seconds_total'),
    fsyncs: sum('kv_fsyncs_total'),
    groups: sum('kv_commit_group_operations_count'),
    grouped: sum('kv_commit_group_operations_sum'),
  };
}

const dir = mkdtempSync(join(os.tmpdir(), 'kv-bench-timeline-'));
const ports = await freePorts(daemons);
const metricsBase = (await freePorts(daemons + 1)).daemonBase;
const cluster = startCluster(join(dir, 'cluster'), ports.coordinator, ports.daemonBase, daemons, [], [
  '--metrics-port', String(metricsBase), ...(args.durable ? ['--durable'] : []),
]);
let failed = 0;
try {
  await waitUntilUp(cluster);
  // kv up gives the coordinator the first metrics port and the daemons the next ones.
  const targets = Array.from({ length: daemons }, (_, i) => `127.0.0.1:${metricsBase + 1 + i}`);
  const client = await Client.connect(cluster.coordinator);
  await client.addSpace(space, { partitions: 16, tolerate: 1 });
  progress(`loading ${keys} keys`);
  const value = { v: Buffer.alloc(100, 7) };
  for (let i = 0; i < keys; i += 500) await Promise.all(Array.from({ length: Math.min(500, keys - i) }, (_, j) => client.put(space, `k${i + j}`, value)));

  const clientCounts = { puts: 0, gets: 0, errors: 0 };
  const started = performance.now();
  const endAt = started + seconds * 1000;
  const loop = async () => {
    while (performance.now() < endAt) {
      const key = `k${Math.floor(Math.random() * keys)}`;
      const put = Math.random() < 0.5;
      try {
        if (put) await client.put(space, key, value);
        else await client.get(space, key);
        if (put) clientCounts.puts++;
        else clientCounts.gets++;
      } catch {
        clientCounts.errors++;
      }
    }
  };

  const points: Point[] = [];
  let backup: { from: number; to: number; code: number | null } | undefined;
  const first = totals(await Promise.all(targets.map((t) => scrapeMetrics(t))));
  let previous = { at: performance.now(), totals: first };
  const scraper = (async () => {
    while (performance.now() < endAt + intervalMs) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, previous.at + intervalMs - performance.now())));
      const now = totals(await Promise.all(targets.map((t) => scrapeMetrics(t))));
      const at = performance.now();
      const dt = (at - previous.at) / 1000;
      const d = (k: keyof typeof now) => now[k] - previous.totals[k];
      points.push({
        t: round((at - started) / 1000, 2),
        putsPerSecond: Math.round(d('puts') / dt),
        getsPerSecond: Math.round(d('gets') / dt),
        errorsPerSecond: Math.round(d('errors') / dt),
        frozenMs: round(d('frozenSeconds') * 1000, 1),
        fsyncsPerSecond: Math.round(d('fsyncs') / dt),
        meanGroup: d('groups') > 0 ? round(d('grouped') / d('groups'), 1) : 0,
      });
      previous = { at, totals: now };
    }
  })();
  const backupRun = (async () => {
    await new Promise((resolve) => setTimeout(resolve, backupAt * 1000));
    const from = (performance.now() - started) / 1000;
    progress(`backup-manager at ${round(from, 1)} s`);
    const proc = new KvProcess('backup-manager', ['backup-manager', '--backup-dir', join(dir, 'backups'), '--json', '--coordinator', cluster.coordinator]);
    const status = await proc.finish(120_000);
    backup = { from: round(from, 2), to: round((performance.now() - started) / 1000, 2), code: status.code };
    if (status.code !== 0) progress(`backup-manager failed: ${proc.stderrTail.slice(-500)}`);
  })();
  await Promise.all([...Array.from({ length: concurrency }, loop), scraper, backupRun]);
  await client.close();

  const daemonsCounted = totals(await Promise.all(targets.map((t) => scrapeMetrics(t))));
  const loadPuts = daemonsCounted.puts - first.puts;
  const loadGets = daemonsCounted.gets - first.gets;
  failed = clientCounts.errors + (backup?.code === 0 ? 0 : 1);
  const m = machine();
  const lines = [
    `machine ${describeMachine(m)}; code ${build()}; ${daemons} daemons, tolerate 1, ${args.durable ? 'durable' : 'not durable'}, ${concurrency} in flight, ${keys} keys`,
    ...points.map((p) => `t=${p.t.toFixed(2)} s  puts/s ${p.putsPerSecond}  gets/s ${p.getsPerSecond}  errors/s ${p.errorsPerSecond}  frozen ${p.frozenMs} ms  fsyncs/s ${p.fsyncsPerSecond}  mean group ${p.meanGroup}`),
    `backup-manager: ${backup ? `${backup.from} s to ${backup.to} s, exit ${backup.code}` : 'did not run'}`,
    `operations counted by the client: ${clientCounts.puts} puts, ${clientCounts.gets} gets, ${clientCounts.errors} failed`,
    // The heads count puts and the tails count gets: each operation once, whatever the chain length.
    `operations counted by the daemons: ${loadPuts} puts, ${loadGets} gets (the same operations, the window a scrape wide)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (!args['no-write']) {
    mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
    writeFileSync(join(repoRoot, 'bench', 'results', 'timeline.json'), `${JSON.stringify({ machine: m, build: build(), args, points, backup, clientCounts }, null, 1)}\n`);
    await writeSvg(join(repoRoot, 'bench', 'charts', 'timeline.svg'), chart(points, backup));
    progress('wrote bench/charts/timeline.svg and bench/results/timeline.json');
  }
} finally {
  await stopCluster(cluster);
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed === 0 ? 0 : 1;

/** Throughput on top, writes held below, the backup-manager run shaded in both. */
function chart(points: Point[], backup: { from: number; to: number } | undefined): TopLevelSpec {
  const x = { field: 't', type: 'quantitative', title: 'seconds since the load began' };
  const shade = backup ? [{ data: { values: [backup] }, mark: { type: 'rect', color: '#f2c94c', opacity: 0.25 }, encoding: { x: { field: 'from', type: 'quantitative' }, x2: { field: 'to' } } }] : [];
  const ops = points.flatMap((p) => [
    { t: p.t, series: 'puts/s', y: p.putsPerSecond },
    { t: p.t, series: 'gets/s', y: p.getsPerSecond },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'One run, from the daemons\u2019 metrics', subtitle: `shaded: backup-manager running; ${intervalMs} ms scrapes` },
    config: { font: 'Helvetica, Arial, sans-serif', background: 'white' },
    vconcat: [
      { width: 520, height: 200, layer: [...shade, { data: { values: ops }, mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y: { field: 'y', type: 'quantitative', title: 'operations/s' }, color: { field: 'series', type: 'nominal', title: null } } }] },
      { width: 520, height: 90, layer: [...shade, { data: { values: points }, mark: { type: 'bar', color: '#c0392b' }, encoding: { x, y: { field: 'frozenMs', type: 'quantitative', title: 'writes held, ms' } } }] },
    ],
  } as unknown as TopLevelSpec;
}

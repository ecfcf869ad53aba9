// Backup benchmark: what a consistent cluster backup costs the writers, how long the freeze lasts as the data
// grows, how much a second backup copies, and how fast a backup is serving again after a restore.
//
//   node dist/bench/backup.js [--sizes 100,1000] [--value-bytes 1000] [--writers 8] [--extra-runs 3] [--no-settle] [--json]
//                             [--charts-dir bench/charts] [--no-charts]
//
// For each size (MB of user data = keys × value bytes, 10^6 bytes a MB, spread over 3 daemons), in one run:
//  a. `kv up` (3 daemons) in a temp dir on free ports; space `bench` (16 partitions); load size/value-bytes keys,
//     each a distinct random value (so LevelDB cannot compress them), 4 clients × 32 puts in flight; then wait
//     (at most 5 min) until LevelDB's compactions of the load are done: no file added or removed for 3 s
//     (--no-settle skips this, so the first backups run amid those compactions);
//  b. W writer loops, each its own Client with one put at a time on random existing keys; every write's start
//     time and latency is recorded and every error counted; they run ~2 s before the backup;
//  c. the real CLI, `node dist/cli/kv.js backup-manager --backup-dir B --json --coordinator …`, as a child
//     process while the writers run: its wall time and its JSON summary (backup.json);
//  d. the writers run ~1 s more and stop. The writes that overlapped the backup-manager run, and those that
//     overlapped the freeze window [freeze.beganAt, freeze.endedAt] of the summary, are picked out;
//  e. `cp -a` of the three daemon data dirs into a temp dir, timed (the same data, no fsync), then `sync -f`;
//  f. 1% of the keys updated, backup-manager again: copied vs. linked bytes, and its time; then the same with
//     nothing else going on (compactions done, a backup, 1% updated, a backup), so the copied share of that last
//     backup is due to the update alone;
//  g. the newest backup restored onto new ports and dirs (server dirs copied, `kv coordinator --restore` and 3
//     daemons on port 0 as child processes), timed from starting the coordinator until all 3 daemons are
//     available and 1000 random gets have succeeded; then `--extra-runs` more back-to-back backups with the
//     writers running, so the freeze figure is a median of several runs.
// Every wait has a deadline; every process is stopped and every temp dir removed at the end, also on failure.
// Progress goes to stderr, the result (a table per size, or JSON with --json) to stdout, and two charts (freeze
// against data size, bytes copied by full and incremental backups) to --charts-dir. Exit code 0 only when
// every backup and the restore worked, no write failed and the cluster stopped cleanly.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { BackupSummary } from '../cli/backup/manager.js';
import { Client, KvError } from '../shared/client.js';
import {
  KvProcess, freePorts, killAllKvProcesses, pause, progress, saveLog, startCluster, stopCluster, upTimeoutMs, waitUntilUp,
  withTimeout, type Cluster,
} from './cluster.js';
import { writeBackupCharts } from './backup-charts.js';
import { build, describeMachine, machine, median, repoRoot, round } from './stats.js';

const spaceName = 'bench';
const partitions = 16;
const daemonCount = 3;
const loadClients = 4;
const loadInflightPerClient = 32;
const writersBeforeMs = 2_000;
const writersAfterMs = 1_000;
const restoreGets = 1_000;
const restoreGetsInflight = 16;
const updateFraction = 0.01;
const bytesPerMB = 1e6;
const settleQuietMs = 3_000;
const settleMaxMs = 300_000;

// ---- options ----

interface Options {
  sizes: number[];
  valueBytes: number;
  writers: number;
  extraRuns: number;
  settle: boolean;
  json: boolean;
  /** Where backup-freeze.svg and backup-copied.svg go; undefined: no charts. */
  chartsDir: string | undefined;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '100,1000' },
      'value-bytes': { type: 'string', default: '1000' },
      writers: { type: 'string', default: '8' },
      'extra-runs': { type: 'string', default: '3' },
      'no-settle': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'charts-dir': { type: 'string', default: join(repoRoot, 'bench', 'charts') },
      'no-charts': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node dist/bench/backup.js [--sizes MB,MB=100,1000] [--value-bytes B=1000] [--writers W=8] [--extra-runs N=3] [--no-settle] [--json] [--charts-dir DIR=bench/charts] [--no-charts]\n',
    );
    process.exit(0);
  }
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number in [${min}, ${max}]`);
    return n;
  };
  const sizes = values.sizes.split(',').map((s) => Number(s.trim()));
  if (sizes.length === 0 || sizes.some((s) => !(s > 0) || s > 100_000)) throw new Error('--sizes must be MB figures in (0, 100000], comma-separated');
  const valueBytes = int('value-bytes', values['value-bytes'], 1, 1_000_000);
  for (const s of sizes) {
    if (Math.round((s * bytesPerMB) / valueBytes) < 100) throw new Error(`--sizes ${s} gives fewer than 100 keys of ${valueBytes} bytes`);
  }
  return {
    sizes,
    valueBytes,
    writers: int('writers', values.writers, 1, 1_000),
    extraRuns: int('extra-runs', values['extra-runs'], 0, 100),
    settle: !values['no-settle'],
    json: values.json,
    chartsDir: values['no-charts'] ? undefined : values['charts-dir'],
  };
}

// ---- small helpers ----

const keyOf = (i: number) => `key${i}`;
const randomKey = (keys: number) => keyOf(Math.floor(Math.random() * keys));
const codeOf = (error: unknown) => (error instanceof KvError ? error.code : 'EXCEPTION');
/** A wall-clock time (ISO text or epoch ms) on this process's performance.now() scale. */
const perfOf = (wall: string | number) => (typeof wall === 'string' ? Date.parse(wall) : wall) - (Date.now() - performance.now());

/** Runs a program to completion within timeoutMs; resolves with its wall time in ms, rejects on failure. */
function run(command: string, args: string[], timeoutMs: number): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message} ${String(stderr).slice(-1000)}`));
      else resolve({ ms: performance.now() - started, stdout: String(stdout) });
    });
  });
}

/** Bytes in files under dir (hard links counted each time they appear), without following symlinks. */
function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms${lastError ? ` (last: ${(lastError as Error).message})` : ''}`);
    await pause(20);
  }
}

// ---- loading and updating keys ----

/** Puts a fresh random value under each key of `indexes`, `inflight` at a time per client; bounded by timeoutMs. */
async function putMany(clients: Client[], indexes: (i: number) => number, count: number, valueBytes: number, timeoutMs: number, what: string) {
  const errors = new Map<string, number>();
  const firstErrors: string[] = [];
  let next = 0;
  let done = 0;
  const started = performance.now();
  const deadline = started + timeoutMs;
  let lastReport = started;
  const worker = async (client: Client) => {
    for (;;) {
      const n = next++;
      if (n >= count) return;
      if (performance.now() > deadline) throw new Error(`${what}: ${done} of ${count} keys in ${timeoutMs} ms; giving up`);
      const key = keyOf(indexes(n));
      try {
        await client.put(spaceName, key, { v: randomBytes(valueBytes) });
      } catch (error) {
        errors.set(codeOf(error), (errors.get(codeOf(error)) ?? 0) + 1);
        if (firstErrors.length < 10) firstErrors.push(`put ${key}: ${codeOf(error)}: ${(error as Error).message}`);
      }
      done++;
      const now = performance.now();
      if (now - lastReport > 10_000) {
        lastReport = now;
        progress(`${what}: ${done}/${count} (${Math.round(done / ((now - started) / 1000))} keys/s)`);
      }
    }
  };
  const workers: Array<Promise<void>> = [];
  for (const client of clients) for (let i = 0; i < loadInflightPerClient; i++) workers.push(worker(client));
  await Promise.all(workers);
  const seconds = (performance.now() - started) / 1000;
  const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
  return { keys: count, seconds: round(seconds, 2), keysPerSecond: Math.round(count / seconds), errors: errorCount, errorsByCode: Object.fromEntries(errors), firstErrors };
}

// ---- the writers ----

/** W loops, each on its own Client, one put at a time on random existing keys; every write's [start, end] kept. */
class Writers {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly failedStarts: number[] = [];
  readonly failedEnds: number[] = [];
  readonly errors = new Map<string, number>();
  readonly firstErrors: string[] = [];
  private stopping = false;
  private loops: Array<Promise<void>> = [];

  constructor(
    private readonly clients: Client[],
    private readonly keys: number,
    private readonly valueBytes: number,
  ) {}

  start(): void {
    this.stopping = false;
    this.loops = this.clients.map(async (client) => {
      while (!this.stopping) {
        const key = randomKey(this.keys);
        const value = randomBytes(this.valueBytes);
        const t0 = performance.now();
        try {
          await client.put(spaceName, key, { v: value });
          this.starts.push(t0);
          this.ends.push(performance.now());
        } catch (error) {
          this.failedStarts.push(t0);
          this.failedEnds.push(performance.now());
          this.errors.set(codeOf(error), (this.errors.get(codeOf(error)) ?? 0) + 1);
          if (this.firstErrors.length < 10) {
            this.firstErrors.push(`put ${key} at +${Math.round(t0)} ms, after ${Math.round(performance.now() - t0)} ms: ${codeOf(error)}: ${(error as Error).message}`);
          }
        }
      }
    });
  }

  /** Stops the loops; each ends after its current put, which the client bounds by its timeout. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const all = Promise.all(this.loops);
    if ((await withTimeout(all.then(() => true), timeoutMs)) === undefined) throw new Error(`the writers did not stop within ${timeoutMs} ms`);
  }

  get failed(): number {
    return this.failedStarts.length;
  }

  /** The writes that were in progress at some moment of [from, to]: their count, worst and median latency. */
  overlapping(from: number, to: number) {
    const latencies: number[] = [];
    for (let i = 0; i < this.starts.length; i++) {
      if (this.starts[i]! <= to && this.ends[i]! >= from) latencies.push(this.ends[i]! - this.starts[i]!);
    }
    let failed = 0;
    for (let i = 0; i < this.failedStarts.length; i++) if (this.failedStarts[i]! <= to && this.failedEnds[i]! >= from) failed++;
    return {
      writes: latencies.length,
      maxMs: round(latencies.length ? Math.max(...latencies) : NaN, 1),
      p50Ms: round(median(latencies), 2),
      failed,
    };
  }

  /** The worst latency of the writes that started in [from, to), and how many there were. */
  startedIn(from: number, to: number) {
    let worst = NaN;
    let writes = 0;
    for (let i = 0; i < this.starts.length; i++) {
      if (this.starts[i]! >= from && this.starts[i]! < to) {
        writes++;
        const latency = this.ends[i]! - this.starts[i]!;
        if (!(latency <= worst)) worst = latency;
      }
    }
    return { writes, maxMs: round(worst, 1) };
  }

  /** Latencies of writes that ended before `before` (the baseline, no backup running). */
  baseline(before: number) {
    const latencies: number[] = [];
    for (let i = 0; i < this.starts.length; i++) if (this.ends[i]! < before) latencies.push(this.ends[i]! - this.starts[i]!);
    latencies.sort((a, b) => a - b);
    const at = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)]! : NaN);
    return { writes: latencies.length, p50Ms: round(at(0.5), 2), p99Ms: round(at(0.99), 2), maxMs: round(at(1), 1) };
  }
}

// ---- the cluster's logs about backups ----

interface LogRecord {
  msg: string;
  pid: number;
  time: number;
  [field: string]: unknown;
}

const interesting = new Set([
  'listening', 'frozen', 'snapshot captured', 'thawed', 'thawed by the lease: the coordinator did not end the freeze', 'snapshot sealed',
  'retrying the backup', 'backup attempt backed out', 'backup started', 'config published',
]);

/** Collects the log lines of kv up's processes that say something about backups (and each process's port). */
function watchBackupLogs(cluster: Cluster): LogRecord[] {
  const records: LogRecord[] = [];
  let partial = '';
  cluster.process.stderr!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const record = JSON.parse(line) as LogRecord;
        if (interesting.has(record.msg) && records.length < 100_000) records.push(record);
      } catch {
        // not a log line
      }
    }
  });
  return records;
}

/** Per daemon, what its log says about backup `name`: how long it held writes, its capture, its attempts. */
function daemonLogsFor(records: LogRecord[], name: string, configVersion: number, began: number) {
  const portOf = new Map<number, number>();
  for (const r of records) if (r.msg === 'listening' && r.name === 'daemon') portOf.set(r.pid, Number(r.port));
  const byPid = new Map<number, { port: number | undefined; frozen: number; heldMs: number[]; captureMs: number[]; quiescedMs: number[]; attempts: number[]; tablesLinked: number[]; leaseThaws: number; sealMs: number[] }>();
  for (const r of records) {
    if (r.backup !== name || r.name !== 'daemon') continue;
    let d = byPid.get(r.pid);
    if (!d) byPid.set(r.pid, (d = { port: portOf.get(r.pid), frozen: 0, heldMs: [], captureMs: [], quiescedMs: [], attempts: [], tablesLinked: [], leaseThaws: 0, sealMs: [] }));
    if (r.msg === 'frozen') d.frozen++;
    else if (r.msg === 'snapshot captured') {
      d.captureMs.push(round(Number(r.captureMs), 2));
      d.quiescedMs.push(round(Number(r.quiescedMs), 2));
      d.attempts.push(Number(r.attempts));
      if (r.tablesLinked !== undefined) d.tablesLinked.push(Number(r.tablesLinked));
    } else if (r.msg === 'thawed') d.heldMs.push(Number(r.heldMs));
    else if (r.msg.startsWith('thawed by the lease')) {
      d.leaseThaws++;
      d.heldMs.push(Number(r.heldMs));
    } else if (r.msg === 'snapshot sealed') d.sealMs.push(Number(r.sealMs));
  }
  const coordinator = records.filter((r) => r.backup === name && r.name === 'coordinator' && (r.msg === 'retrying the backup' || r.msg === 'backup attempt backed out'));
  // Where the freeze's time went, from the log times (ms): the coordinator persisting and publishing the freeze
  // config, the daemons freezing and capturing, and the thaw config being persisted after the last capture.
  const frozen = records.filter((r) => r.backup === name && r.msg === 'frozen').map((r) => r.time);
  const captured = records.filter((r) => r.backup === name && r.msg === 'snapshot captured').map((r) => r.time);
  const lastCapture = captured.length ? Math.max(...captured) : NaN;
  const freezePublished = records.find((r) => r.name === 'coordinator' && r.msg === 'config published' && r.version === configVersion)?.time ?? NaN;
  const thawPublished = records.find((r) => r.name === 'coordinator' && r.msg === 'config published' && Number(r.version) > configVersion && r.time >= lastCapture)?.time ?? NaN;
  const timeline = {
    freezeConfigPublishedMs: round(freezePublished - began, 0),
    allFrozenMs: round((frozen.length ? Math.max(...frozen) : NaN) - began, 0),
    lastCaptureMs: round(lastCapture - began, 0),
    thawConfigPublishedMs: round(thawPublished - began, 0),
  };
  return {
    daemons: [...byPid.values()].sort((a, b) => (a.port ?? 0) - (b.port ?? 0)),
    coordinatorRetries: coordinator.map((r) => `${r.msg}: ${String(r.why ?? r.err ?? '')}`),
    /** Log times after the freeze began (coordinator's beganAt), in ms. */
    timeline,
  };
}

// ---- backup-manager ----

interface BackupRun {
  name: string;
  wallMs: number;
  startedAt: number;
  endedAt: number;
  freezeFrom: number;
  freezeTo: number;
  summary: BackupSummary;
}

let lastBackupStartWall = 0;

/** Runs the real CLI once; fails unless it exits 0 with a summary. */
async function backupManager(coordinator: string, backupDir: string, timeoutMs: number): Promise<BackupRun> {
  // Backups are named by the second: a second one within the same second would be refused.
  const wait = Math.floor(lastBackupStartWall / 1000) * 1000 + 1000 - Date.now();
  if (wait > 0) await pause(wait + 20);
  lastBackupStartWall = Date.now();
  const proc = new KvProcess('backup-manager', ['backup-manager', '--backup-dir', backupDir, '--json', '--coordinator', coordinator]);
  const status = await proc.finish(timeoutMs);
  const endedAt = proc.exitedAt ?? performance.now();
  if (status.code !== 0) throw new Error(`backup-manager exited ${JSON.stringify(status)}:\n${proc.stderrTail.slice(-3000)}`);
  let summary: BackupSummary;
  try {
    summary = JSON.parse(proc.stdout) as BackupSummary;
  } catch {
    throw new Error(`backup-manager printed no JSON summary: ${proc.stdout.slice(0, 500)}`);
  }
  return {
    name: summary.name,
    wallMs: endedAt - proc.startedAt,
    startedAt: proc.startedAt,
    endedAt,
    freezeFrom: perfOf(summary.freeze.beganAt),
    freezeTo: perfOf(summary.freeze.endedAt),
    summary,
  };
}

/**
 * What each daemon's snapshot in the backup is made of (from its manifest.json): the table files it hard-linked,
 * and the files it had to copy during the freeze (the LevelDB MANIFEST and write-ahead logs).
 */
function snapshotShape(backupRoot: string, name: string) {
  return readdirSync(join(backupRoot, name))
    .filter((n) => /^\d+$/.test(n))
    .map((serverId) => {
      const manifest = JSON.parse(readFileSync(join(backupRoot, name, serverId, 'manifest.json'), 'utf8')) as { files: Array<{ path: string; bytes: number }> };
      const of = (pattern: RegExp) => manifest.files.filter((f) => pattern.test(f.path));
      const sum = (files: Array<{ bytes: number }>) => files.reduce((a, f) => a + f.bytes, 0);
      return {
        serverId,
        tables: of(/\.(ldb|sst)$/).length,
        tableBytes: sum(of(/\.(ldb|sst)$/)),
        manifestBytes: sum(of(/\/MANIFEST-\d+$/)),
        logs: of(/\.log$/).length,
        logBytes: sum(of(/\.log$/)),
      };
    });
}

function describeRun(r: BackupRun, writers: Writers | undefined, records: LogRecord[], backupRoot: string) {
  const s = r.summary;
  const captures = s.servers.map((x) => x.captureMs);
  const quiesces = s.servers.map((x) => x.quiescedMs);
  return {
    name: r.name,
    freezeMs: round(s.freeze.ms, 1),
    attempts: s.attempts,
    captureMs: { max: round(Math.max(...captures), 2), median: round(median(captures), 2), perDaemon: captures.map((c) => round(c, 2)) },
    quiescedMs: { max: round(Math.max(...quiesces), 2), median: round(median(quiesces), 2), perDaemon: quiesces.map((c) => round(c, 2)) },
    backupManagerWallMs: Math.round(r.wallMs),
    backupManagerTotalMs: s.totalMs,
    files: s.totals.files,
    bytes: s.totals.bytes,
    copiedBytes: s.totals.copiedBytes,
    linkedBytes: s.totals.linkedBytes,
    copiedFraction: round(s.totals.copiedBytes / s.totals.bytes, 4),
    writesDuringBackup: writers?.overlapping(r.startedAt, r.endedAt),
    writesDuringFreeze: writers?.overlapping(r.freezeFrom, r.freezeTo),
    // The worst write by the phase of the backup it started in: backup-manager starting up and taking the lock,
    // the freeze, the daemons checksumming their snapshots (until the last "snapshot sealed"), the copy and check.
    writesByPhase: writers && (() => {
      const sealed = records.filter((x) => x.backup === r.name && x.msg === 'snapshot sealed').map((x) => perfOf(x.time));
      const sealedAt = sealed.length ? Math.max(...sealed) : r.freezeTo;
      return {
        start: writers.startedIn(r.startedAt, r.freezeFrom),
        freeze: writers.startedIn(r.freezeFrom, r.freezeTo),
        seal: { ...writers.startedIn(r.freezeTo, sealedAt), ms: Math.round(sealedAt - r.freezeTo) },
        copy: { ...writers.startedIn(sealedAt, r.endedAt), ms: Math.round(r.endedAt - sealedAt) },
      };
    })(),
    logs: daemonLogsFor(records, r.name, s.configVersion, Date.parse(s.freeze.beganAt)),
    snapshots: snapshotShape(backupRoot, r.name),
  };
}

// ---- cp -a of live data dirs ----

/** The names in the daemons' LevelDB dirs, as one string: it changes when a flush or compaction adds or drops a file. */
const fileSet = (dirs: string[]) => dirs.map((d) => readdirSync(join(d, 'leveldb')).sort().join(',')).join('|');

/**
 * Waits until no flush or compaction has added or removed a file in the daemons' LevelDBs for quietMs (at most
 * maxMs): LevelDB writes a compaction's output tables as it goes, so a running compaction changes the file set.
 */
async function quietFiles(dirs: string[], quietMs: number, maxMs: number): Promise<{ ms: number; settled: boolean }> {
  const started = performance.now();
  let last = fileSet(dirs);
  let stableSince = performance.now();
  while (performance.now() - stableSince < quietMs) {
    if (performance.now() - started > maxMs) return { ms: Math.round(performance.now() - started), settled: false };
    await pause(200);
    const now = fileSet(dirs);
    if (now !== last) {
      last = now;
      stableSince = performance.now();
    }
  }
  return { ms: Math.round(performance.now() - started), settled: true };
}

/**
 * `cp -a` of live daemon data dirs, timed. LevelDB deletes table files when a compaction ends, and cp fails on a
 * file that vanished under it, so this first waits (bounded) until the dirs' file sets stay unchanged for 2 s,
 * and tries again (at most 5 times) when a file vanished anyway. Only the successful attempt is timed.
 */
async function copyLive(dirs: string[], dest: string) {
  const { ms: settleMs } = await quietFiles(dirs, 2_000, 180_000);
  const failures: string[] = [];
  for (let attempt = 1; ; attempt++) {
    try {
      const copy = await run('cp', ['-a', ...dirs, dest], 600_000);
      return { ms: copy.ms, settleMs, attempts: attempt, failures };
    } catch (error) {
      failures.push((error as Error).message.split('\n').find((l) => l.startsWith('cp:')) ?? (error as Error).message.slice(0, 200));
      if (attempt >= 5 || !/No such file/.test((error as Error).message)) throw error;
      rmSync(dest, { recursive: true, force: true });
      mkdirSync(dest);
    }
  }
}

// ---- restore ----

async function restoreAndServe(backupRoot: string, workDir: string, keys: number, valueBytes: number) {
  const name = readFileSync(join(backupRoot, 'LATEST'), 'utf8').trim();
  const backupDir = join(backupRoot, name);
  const serverIds = readdirSync(backupDir).filter((n) => /^\d+$/.test(n) && statSync(join(backupDir, n)).isDirectory());
  if (serverIds.length !== daemonCount) throw new Error(`backup ${name} holds ${serverIds.length} servers, not ${daemonCount}`);
  mkdirSync(workDir, { recursive: true });
  const copy = await run('cp', ['-a', ...serverIds.map((id) => join(backupDir, id)), workDir], 600_000);

  const processes: KvProcess[] = [];
  let client: Client | undefined;
  try {
    const t0 = performance.now();
    const coordinator = new KvProcess('restore coordinator', [
      'coordinator', '--restore', join(backupDir, 'coordinator.bin'), '--port', '0', '--data', join(workDir, 'coordinator'),
    ]);
    processes.push(coordinator);
    const listening = await coordinator.waitForLog('listening', 30_000);
    const address = String(listening.address);
    const tListening = performance.now();
    for (const id of serverIds) {
      processes.push(new KvProcess(`restore daemon ${id}`, ['daemon', '--listen-port', '0', '--coordinator', address, '--data', join(workDir, id)]));
    }
    client = await Client.connect(address, { timeoutMs: 10_000 });
    const config = await waitUntil('every restored daemon available', 60_000, async () => {
      for (const p of processes) if (p.exitStatus) throw new Error(`${p.name} exited ${JSON.stringify(p.exitStatus)}: ${p.stderrTail.slice(-1000)}`);
      const c = await client!.showConfig();
      return serverIds.every((id) => c.servers.find((s) => s.id === id)?.state === 'available') ? c : undefined;
    });
    const tAvailable = performance.now();
    let next = 0;
    let bad = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: restoreGetsInflight }, async () => {
        while (next < restoreGets) {
          next++;
          const key = randomKey(keys);
          try {
            const attrs = await client!.get(spaceName, key);
            const v = attrs?.v;
            if (!(v instanceof Uint8Array) || v.length !== valueBytes) throw new Error(`wrong value: ${attrs === undefined ? 'absent' : typeof v}`);
          } catch (error) {
            bad++;
            if (failures.length < 5) failures.push(`get ${key}: ${(error as Error).message}`);
          }
        }
      }),
    );
    const tServing = performance.now();
    if (bad > 0) throw new Error(`${bad} of ${restoreGets} gets on the restored cluster failed: ${failures.join('; ')}`);
    // The restored cluster starts read-only: a put must be refused.
    const putRefused = await client.put(spaceName, keyOf(0), { v: Buffer.alloc(1) }).then(
      () => 'ACCEPTED',
      (error: unknown) => codeOf(error),
    );
    return {
      backup: name,
      copyMs: Math.round(copy.ms),
      coordinatorListeningMs: Math.round(tListening - t0),
      daemonsAvailableMs: Math.round(tAvailable - t0),
      getsMs: Math.round(tServing - tAvailable),
      servingMs: Math.round(tServing - t0),
      gets: restoreGets,
      readOnly: config.readOnly,
      putOnRestored: putRefused,
    };
  } finally {
    await client?.close();
    // Daemons first, so each can tell the coordinator it is leaving; each wait bounded, then SIGKILL.
    await Promise.all(processes.slice(1).map((p) => p.stop('SIGTERM', 15_000)));
    if (processes[0]) await processes[0].stop('SIGTERM', 15_000);
    rmSync(workDir, { recursive: true, force: true });
  }
}

// ---- one size ----

/** Clusters started and not yet stopped: a signal or the watchdog stops them. */
const activeClusters = new Set<Cluster>();

async function benchSize(sizeMB: number, options: Options, tempDirs: string[]) {
  const keys = Math.round((sizeMB * bytesPerMB) / options.valueBytes);
  const dir = mkdtempSync(join(os.tmpdir(), 'kv-bench-backup-'));
  tempDirs.push(dir);
  const clusterDir = join(dir, 'cluster');
  const backupRoot = join(dir, 'backups');
  const managerTimeoutMs = 120_000 + sizeMB * 600;
  let cluster: Cluster | undefined;
  const clients: Client[] = [];
  const closeClients = () => Promise.allSettled(clients.splice(0).map((c) => c.close()));
  try {
    const ports = await freePorts(daemonCount);
    progress(`[${sizeMB} MB] starting kv up in ${clusterDir} (coordinator :${ports.coordinator}, daemons :${ports.daemonBase}..${ports.daemonBase + daemonCount - 1})`);
    cluster = startCluster(clusterDir, ports.coordinator, ports.daemonBase, daemonCount);
    activeClusters.add(cluster);
    const records = watchBackupLogs(cluster);
    await waitUntilUp(cluster);

    // a. the space and the data
    const loaders: Client[] = [];
    for (let i = 0; i < loadClients; i++) loaders.push(await Client.connect(cluster.coordinator));
    clients.push(...loaders);
    const afterAdd = await loaders[0]!.addSpace(spaceName, { partitions });
    if (afterAdd.servers.length !== daemonCount) throw new Error(`the cluster has ${afterAdd.servers.length} servers, not ${daemonCount}`);
    await waitUntil('the clients seeing the new space', 10_000, async () =>
      loaders.every((c) => c.currentConfig.spaces.some((s) => s.name === spaceName)) ? true : undefined,
    );
    progress(`[${sizeMB} MB] loading ${keys} keys of ${options.valueBytes} random bytes, ${loadClients} clients x ${loadInflightPerClient} in flight`);
    const load = await putMany(loaders, (n) => n, keys, options.valueBytes, 120_000 + keys * 3, 'load');
    progress(`[${sizeMB} MB] loaded in ${load.seconds} s (${load.keysPerSecond} keys/s, ${load.errors} errors)`);
    if (load.errors > 0) throw new Error(`the load failed for ${load.errors} keys: ${load.firstErrors.join('; ')}`);
    const daemonDirs = Array.from({ length: daemonCount }, (_, i) => join(clusterDir, `daemon-${i + 1}`));
    // A bulk load leaves LevelDB a lot of compaction to do. Unless --no-settle, wait (bounded) until it is done,
    // so the backups see a cluster in its steady state rather than one still rewriting most of its files.
    let settle: { ms: number; settled: boolean } | undefined;
    if (options.settle) {
      progress(`[${sizeMB} MB] waiting for LevelDB's compactions to finish (no file added or removed for ${settleQuietMs} ms; at most ${settleMaxMs} ms)`);
      settle = await quietFiles(daemonDirs, settleQuietMs, settleMaxMs);
      progress(`[${sizeMB} MB] ${settle.settled ? 'settled' : 'NOT settled'} after ${settle.ms} ms`);
    }

    // b–d. the first backup, with the writers running
    const writerClients: Client[] = [];
    for (let i = 0; i < options.writers; i++) writerClients.push(await Client.connect(cluster.coordinator));
    clients.push(...writerClients);
    const writers = new Writers(writerClients, keys, options.valueBytes);
    writers.start();
    await pause(writersBeforeMs);
    progress(`[${sizeMB} MB] backup 1 (full) with ${options.writers} writers running`);
    const first = await backupManager(cluster.coordinator, backupRoot, managerTimeoutMs);
    await pause(writersAfterMs);
    await writers.stop(30_000);
    const firstReport = describeRun(first, writers, records, backupRoot);
    const baseline = writers.baseline(first.startedAt);
    const writesFirst = {
      total: writers.starts.length + writers.failed,
      failed: writers.failed,
      errorsByCode: Object.fromEntries(writers.errors),
      firstErrors: writers.firstErrors.slice(),
      beforeBackup: baseline,
    };
    progress(`[${sizeMB} MB] backup 1: freeze ${firstReport.freezeMs} ms, ${Math.round(first.wallMs)} ms in all; writes: ${writesFirst.total}, ${writesFirst.failed} failed`);

    // e. cp -a of the same data dirs
    const cpDest = join(dir, 'cp-a');
    mkdirSync(cpDest);
    const cp = await copyLive(daemonDirs, cpDest);
    const cpBytes = treeBytes(cpDest);
    const sync = await run('sync', ['-f', cpDest], 300_000);
    rmSync(cpDest, { recursive: true, force: true });
    progress(`[${sizeMB} MB] cp -a of ${cpBytes} bytes: ${Math.round(cp.ms)} ms (+ sync ${Math.round(sync.ms)} ms; waited ${cp.settleMs} ms for compactions, ${cp.attempts} attempt(s))`);

    // f. 1% of the keys updated, then a second, incremental backup
    const updated = Math.max(1, Math.round(keys * updateFraction));
    const chosen = new Set<number>();
    while (chosen.size < updated) chosen.add(Math.floor(Math.random() * keys));
    const chosenList = [...chosen];
    const update = await putMany(loaders, (n) => chosenList[n]!, updated, options.valueBytes, 120_000 + updated * 10, 'update');
    if (update.errors > 0) throw new Error(`the update failed for ${update.errors} keys: ${update.firstErrors.join('; ')}`);
    progress(`[${sizeMB} MB] updated ${updated} keys; backup 2 (incremental)`);
    const second = await backupManager(cluster.coordinator, backupRoot, managerTimeoutMs);
    const secondReport = describeRun(second, undefined, records, backupRoot);
    progress(`[${sizeMB} MB] backup 2: copied ${secondReport.copiedBytes} of ${secondReport.bytes} bytes, ${Math.round(second.wallMs)} ms`);

    // f'. the same 1% update with nothing else going on: once compactions are done, a backup, then 1% of the keys
    // updated, then another. What this one copies is due to the update alone (the writers ran during backup 1,
    // and whatever they wrote, and the compactions it caused, is in backup 2's figure as well).
    progress(`[${sizeMB} MB] quiet incremental: waiting for compactions, backup, ${updated} keys updated, backup`);
    const quietSettle = await quietFiles(daemonDirs, settleQuietMs, settleMaxMs);
    const quietBase = await backupManager(cluster.coordinator, backupRoot, managerTimeoutMs);
    const quietChosen = new Set<number>();
    while (quietChosen.size < updated) quietChosen.add(Math.floor(Math.random() * keys));
    const quietList = [...quietChosen];
    const quietUpdate = await putMany(loaders, (n) => quietList[n]!, updated, options.valueBytes, 120_000 + updated * 10, 'update');
    if (quietUpdate.errors > 0) throw new Error(`the update failed for ${quietUpdate.errors} keys: ${quietUpdate.firstErrors.join('; ')}`);
    const quietSecond = await backupManager(cluster.coordinator, backupRoot, managerTimeoutMs);
    const quietBaseReport = describeRun(quietBase, undefined, records, backupRoot);
    const quietReport = describeRun(quietSecond, undefined, records, backupRoot);
    progress(`[${sizeMB} MB] quiet incremental: copied ${quietReport.copiedBytes} of ${quietReport.bytes} bytes`);

    // g. restore the newest backup beside the running cluster
    progress(`[${sizeMB} MB] restoring ${readFileSync(join(backupRoot, 'LATEST'), 'utf8').trim()} onto new ports`);
    const restore = await restoreAndServe(backupRoot, join(dir, 'restore'), keys, options.valueBytes);
    progress(`[${sizeMB} MB] restored: serving ${restoreGets} gets ${restore.servingMs} ms after starting the coordinator`);

    // g. more back-to-back backups with the writers running, for the freeze's median
    const extraWriters = new Writers(writerClients, keys, options.valueBytes);
    const extra: ReturnType<typeof describeRun>[] = [];
    const runs: BackupRun[] = [];
    if (options.extraRuns > 0) {
      extraWriters.start();
      await pause(writersBeforeMs);
      for (let i = 0; i < options.extraRuns; i++) {
        progress(`[${sizeMB} MB] extra backup ${i + 1}/${options.extraRuns}`);
        runs.push(await backupManager(cluster.coordinator, backupRoot, managerTimeoutMs));
      }
      await pause(writersAfterMs);
      await extraWriters.stop(30_000);
      extra.push(...runs.map((r) => describeRun(r, extraWriters, records, backupRoot)));
    }
    const writesExtra = {
      total: extraWriters.starts.length + extraWriters.failed,
      failed: extraWriters.failed,
      errorsByCode: Object.fromEntries(extraWriters.errors),
      firstErrors: extraWriters.firstErrors.slice(),
      beforeBackups: extraWriters.baseline(runs[0]?.startedAt ?? Infinity),
    };

    const problemsBeforeStop = cluster.problemCount;
    await closeClients();
    progress(`[${sizeMB} MB] stopping the cluster (SIGINT)`);
    const stop = await stopCluster(cluster);
    activeClusters.delete(cluster);
    const c = cluster;
    cluster = undefined;
    const ok = stop.code === 0 && !stop.killed && writesFirst.failed === 0 && writesExtra.failed === 0;
    const logPath = ok ? undefined : saveLog(c, 'kv-bench-backup');
    rmSync(dir, { recursive: true, force: true });

    const all = [firstReport, secondReport, quietBaseReport, quietReport, ...extra];
    const withWriters = [firstReport, ...extra];
    const freezes = all.map((r) => r.freezeMs);
    const duringFreeze = [firstReport, ...extra].map((r) => r.writesDuringFreeze!);
    const duringBackup = [firstReport, ...extra].map((r) => r.writesDuringBackup!);
    return {
      ok,
      sizeMB,
      keys,
      valueBytes: options.valueBytes,
      userBytes: keys * options.valueBytes,
      load,
      settleAfterLoad: settle ?? 'skipped (--no-settle)',
      first: firstReport,
      writesFirst,
      cpA: { ms: Math.round(cp.ms), bytes: cpBytes, thenSyncMs: Math.round(sync.ms), settleMs: cp.settleMs, attempts: cp.attempts, failures: cp.failures },
      second: { updatedKeys: updated, updateSeconds: update.seconds, ...secondReport },
      quietIncremental: {
        settle: quietSettle,
        updatedKeys: updated,
        updateSeconds: quietUpdate.seconds,
        before: quietBaseReport,
        ...quietReport,
      },
      restore,
      extra,
      writesExtra,
      freeze: {
        /** Backup 1 (writers), 2 (after the 1% update), the quiet pair, then the extra runs (writers). */
        runs: all.map((r) => r.name),
        runsMs: freezes,
        medianMs: round(median(freezes), 1),
        withWritersMedianMs: round(median(withWriters.map((r) => r.freezeMs)), 1),
        maxMs: Math.max(...freezes),
        captureMaxMsPerRun: all.map((r) => r.captureMs.max),
        captureMaxMsMedian: round(median(all.map((r) => r.captureMs.max)), 2),
        quiescedMaxMsPerRun: all.map((r) => r.quiescedMs.max),
        worstWriteDuringFreezeMsPerRun: duringFreeze.map((w) => w.maxMs),
        worstWriteDuringBackupMsPerRun: duringBackup.map((w) => w.maxMs),
        backupManagerWallMsPerRun: all.map((r) => r.backupManagerWallMs),
      },
      cluster: {
        warnOrWorseLogLines: problemsBeforeStop,
        warnOrWorseLogLinesIncludingStop: c.problemCount,
        firstProblems: c.problems.slice(0, 10),
        stop: { exitCode: stop.code, signal: stop.signal, ms: Math.round(stop.ms), killed: stop.killed },
        log: logPath,
      },
    };
  } catch (error) {
    if (cluster) progress(`cluster stderr (tail):\n${cluster.stderrTail.slice(-3000)}\ncluster log: ${saveLog(cluster, 'kv-bench-backup')}`);
    throw error;
  } finally {
    await closeClients();
    await killAllKvProcesses();
    if (cluster) {
      await stopCluster(cluster);
      activeClusters.delete(cluster);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

type SizeResult = Awaited<ReturnType<typeof benchSize>>;

// ---- output ----

const mb = (bytes: number) => `${round(bytes / bytesPerMB, 1)} MB`;
const list = (values: Array<number | undefined>) => values.map((v) => String(v)).join(', ');

function table(r: SizeResult, m: ReturnType<typeof machine>, buildLabel: string): string {
  const f = r.first;
  const rows: Array<[string, string]> = [
    ['size', `${r.sizeMB} MB of user data: ${r.keys} keys x ${r.valueBytes} random bytes, ${daemonCount} daemons, ${partitions} partitions`],
    ['machine', describeMachine(m)],
    ['code (git describe)', buildLabel],
    ['load', `${r.load.seconds} s, ${r.load.keysPerSecond} keys/s, ${r.load.errors} errors`],
    ['compactions after the load', typeof r.settleAfterLoad === 'string' ? r.settleAfterLoad : `${r.settleAfterLoad.settled ? 'done' : 'NOT done'} after ${r.settleAfterLoad.ms} ms`],
    ['freeze ms: median (runs)', `${r.freeze.medianMs} (${list(r.freeze.runsMs)})`],
    ['freeze ms with writers running: median', `${r.freeze.withWritersMedianMs} (backup 1 and the later runs)`],
    ['capture ms, max over daemons (runs)', `median ${r.freeze.captureMaxMsMedian} (${list(r.freeze.captureMaxMsPerRun)})`],
    ['quiesce ms, max over daemons (runs)', list(r.freeze.quiescedMaxMsPerRun)],
    ['backup 1: capture ms max / median', `${f.captureMs.max} / ${f.captureMs.median} (per daemon ${list(f.captureMs.perDaemon)})`],
    ['backup 1: quiesce ms max / median', `${f.quiescedMs.max} / ${f.quiescedMs.median}`],
    ['tables linked inside the freeze per daemon (runs)', [r.first, r.second, r.quietIncremental.before, r.quietIncremental, ...r.extra].map((x) => x.logs.daemons.map((d) => d.tablesLinked.join('+') || '-').join('/')).join(', ')],
    ['capture attempts per daemon (runs)', [r.first, r.second, r.quietIncremental.before, r.quietIncremental, ...r.extra].map((x) => x.logs.daemons.map((d) => d.attempts.join('+')).join('/')).join(', ')],
    ['backup 1: snapshot per daemon', f.snapshots.map((x) => `${x.tables} tables ${mb(x.tableBytes)}, MANIFEST ${round(x.manifestBytes / 1024, 1)} KiB, ${x.logs} logs ${mb(x.logBytes)}`).join('; ')],
    ['freeze timeline ms (config out / all frozen / last capture / thaw out; runs)', [r.first, r.second, r.quietIncremental.before, r.quietIncremental, ...r.extra].map((x) => { const t = x.logs.timeline; return `${t.freezeConfigPublishedMs}/${t.allFrozenMs}/${t.lastCaptureMs}/${t.thawConfigPublishedMs}`; }).join(', ')],
    ['backup 1: daemons held writes ms (log)', f.logs.daemons.map((d) => `:${d.port} ${d.heldMs.join('+')}${d.leaseThaws ? ' LEASE' : ''}`).join(', ')],
    ['writes before the backup p50/p99/max ms', `${r.writesFirst.beforeBackup.p50Ms} / ${r.writesFirst.beforeBackup.p99Ms} / ${r.writesFirst.beforeBackup.maxMs} (${r.writesFirst.beforeBackup.writes} writes)`],
    ['worst write during backup-manager ms', `${f.writesDuringBackup!.maxMs} (${f.writesDuringBackup!.writes} writes; later runs ${list(r.extra.map((e) => e.writesDuringBackup!.maxMs))})`],
    ['backup 1: worst write by phase it began in ms', (() => { const p = f.writesByPhase!; return `start ${p.start.maxMs}, freeze ${p.freeze.maxMs}, seal (${p.seal.ms} ms) ${p.seal.maxMs}, copy+check (${p.copy.ms} ms) ${p.copy.maxMs}`; })()],
    ['worst write during the freeze ms', `${f.writesDuringFreeze!.maxMs} (${f.writesDuringFreeze!.writes} writes; later runs ${list(r.extra.map((e) => e.writesDuringFreeze!.maxMs))})`],
    ['failed writes', `${r.writesFirst.failed + r.writesExtra.failed} of ${r.writesFirst.total + r.writesExtra.total}${r.writesFirst.failed + r.writesExtra.failed ? ` ${JSON.stringify({ ...r.writesFirst.errorsByCode, ...r.writesExtra.errorsByCode })}` : ''}`],
    ['backup 1: backup-manager wall / totalMs', `${f.backupManagerWallMs} / ${f.backupManagerTotalMs} ms (${f.files} files, ${mb(f.bytes)})`],
    ['cp -a of the daemon dirs', `${r.cpA.ms} ms (${mb(r.cpA.bytes)}; then sync -f ${r.cpA.thenSyncMs} ms; after ${r.cpA.settleMs} ms waiting for compactions, attempt ${r.cpA.attempts})`],
    ['backup 2 (1% keys updated): copied', `${mb(r.second.copiedBytes)} of ${mb(r.second.bytes)} = ${round(r.second.copiedFraction * 100, 2)}% (linked ${mb(r.second.linkedBytes)})`],
    ['backup 2: backup-manager wall / totalMs', `${r.second.backupManagerWallMs} / ${r.second.backupManagerTotalMs} ms`],
    ['quiet: 1% updated between 2 backups, copied', `${mb(r.quietIncremental.copiedBytes)} of ${mb(r.quietIncremental.bytes)} = ${round(r.quietIncremental.copiedFraction * 100, 2)}% (linked ${mb(r.quietIncremental.linkedBytes)}; ${r.quietIncremental.backupManagerWallMs} ms)`],
    ['later backups: backup-manager wall ms', list(r.extra.map((e) => e.backupManagerWallMs))],
    ['restore: copy server dirs', `${r.restore.copyMs} ms`],
    ['restore: coordinator start → listening', `${r.restore.coordinatorListeningMs} ms`],
    ['restore: → 3 daemons available', `${r.restore.daemonsAvailableMs} ms`],
    [`restore: → ${r.restore.gets} gets served`, `${r.restore.servingMs} ms (read-only: ${r.restore.readOnly}, a put: ${r.restore.putOnRestored})`],
    ['cluster warn/error log lines', String(r.cluster.warnOrWorseLogLines)],
    ['cluster stop (SIGINT)', `exit ${r.cluster.stop.exitCode}${r.cluster.stop.signal ? ` (${r.cluster.stop.signal})` : ''} after ${r.cluster.stop.ms} ms${r.cluster.stop.killed ? ', KILLED' : ''}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [`== ${r.sizeMB} MB ==`, ...rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`)];
  for (const e of [...r.writesFirst.firstErrors, ...r.writesExtra.firstErrors]) lines.push(`  write error: ${e}`);
  for (const run of [r.first, r.second, r.quietIncremental.before, r.quietIncremental, ...r.extra]) for (const x of run.logs.coordinatorRetries) lines.push(`  ${run.name}: ${x}`);
  for (const p of r.cluster.firstProblems) lines.push(`  cluster log: ${p}`);
  return lines.join('\n') + '\n';
}

// ---- main ----

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions();
  } catch (error) {
    process.stderr.write(`backup: ${(error as Error).message} (--help for usage)\n`);
    return 2;
  }
  const tempDirs: string[] = [];
  const cleanup = async () => {
    await killAllKvProcesses();
    await Promise.allSettled([...activeClusters].map((c) => stopCluster(c)));
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    progress('interrupted; stopping every process');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A last-resort bound on the whole run (each step has its own deadline well inside it).
  const watchdogMs = options.sizes.reduce((sum, s) => sum + upTimeoutMs + 900_000 + s * 5_000, 0);
  const watchdog = setTimeout(() => {
    progress(`the run exceeded ${watchdogMs} ms; stopping`);
    void cleanup().finally(() => process.exit(2));
  }, watchdogMs);
  watchdog.unref();

  const m = machine();
  const buildLabel = build();
  const results: SizeResult[] = [];
  try {
    for (const size of options.sizes) {
      const result = await benchSize(size, options, tempDirs);
      results.push(result);
      if (!options.json) process.stdout.write(table(result, machine(), buildLabel) + '\n');
    }
  } catch (error) {
    progress(`failed: ${(error as Error).stack ?? String(error)}`);
    await cleanup();
    return 1;
  } finally {
    clearTimeout(watchdog);
  }
  if (options.json) {
    process.stdout.write(
      JSON.stringify({ command: `node dist/bench/backup.js ${process.argv.slice(2).join(' ')}`.trim(), machine: m, machineAtEnd: machine(), build: buildLabel, options, sizes: results }, null, 2) + '\n',
    );
  }
  if (options.chartsDir !== undefined) {
    const subtitle = `${options.valueBytes}-byte values, ${options.writers} writers, ${daemonCount} daemons; ${m.cores} cores; ${buildLabel}`;
    try {
      progress(`wrote ${(await writeBackupCharts(results, options.chartsDir, subtitle)).join(', ')}`);
    } catch (error) {
      progress(`the charts failed: ${(error as Error).stack ?? String(error)}`);
      return 1;
    }
  }
  const ok = results.every((r) => r.ok);
  if (!ok) progress('FAILED: failed writes or an unclean stop (see above)');
  return ok ? 0 : 1;
}

process.exitCode = await main();

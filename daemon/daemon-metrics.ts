// What a daemon counts for Prometheus (shared/metrics.ts): requests by type and outcome, their latency, the config
// it runs, freezes, and snapshots held. Children are bound once per (type, code), so counting costs a Map lookup.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterConfig } from '../shared/config.js';
import { parseManifest } from './leveldb-manifest.js';

export class DaemonMetrics {
  private readonly requests: Counter<'type' | 'code'>;
  private readonly latency: Histogram<'type'>;
  private readonly bound = new Map<string, { count: Counter.Internal }>();
  private readonly timers = new Map<string, Histogram.Internal<'type'>>();
  private readonly version: Gauge;
  private readonly epoch: Gauge;
  private readonly commitGroups: Histogram;
  private readonly commitSeconds: Histogram;
  private readonly fsyncs: Counter;
  readonly freezes: Counter;
  readonly frozenSeconds: Counter;

  constructor(
    readonly registry: Registry,
    snapshotsHeld: () => number,
    /** The daemon's LevelDB directory: its tables per level and bytes on disk are read at each scrape. */
    leveldbDir: string,
    /** The config this daemon runs and its server id, for what it is transferring. */
    running: () => { config: ClusterConfig | undefined; serverId: string | undefined },
  ) {
    const registers = [registry];
    this.requests = new Counter({ name: 'kv_requests_total', help: 'requests answered, by type and outcome (ok or the error code)', labelNames: ['type', 'code'], registers });
    this.latency = new Histogram({
      name: 'kv_request_seconds',
      help: 'time from a request read to its answer sent, by type',
      labelNames: ['type'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.version = new Gauge({ name: 'kv_config_version', help: 'version of the cluster config this daemon runs', registers });
    this.epoch = new Gauge({ name: 'kv_config_epoch', help: 'coordinator leadership epoch of the config this daemon runs', registers });
    this.commitGroups = new Histogram({
      name: 'kv_commit_group_operations',
      help: 'LevelDB batches committed (group commit) and the operations in each',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'kv_commit_seconds',
      help: 'time one LevelDB batch took to write (with its fsync in durable mode)',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers,
    });
    this.fsyncs = new Counter({ name: 'kv_fsyncs_total', help: 'LevelDB batches written with sync (durable mode: one fsync for every write in the batch)', registers });
    this.freezes = new Counter({ name: 'kv_freezes_total', help: 'backup freezes this daemon held writes for', registers });
    this.frozenSeconds = new Counter({ name: 'kv_frozen_seconds_total', help: 'time this daemon held writes for backups', registers });
    new Gauge({ name: 'kv_snapshots_held', help: 'backup snapshots kept on this daemon', registers, collect() { this.set(snapshotsHeld()); } });
    new Gauge({ name: 'kv_transfers_in_progress', help: 'partitions this daemon is receiving (joining) or sending (as the tail) by state transfer', labelNames: ['direction'], registers, collect() {
      const { config, serverId } = running();
      this.reset();
      if (!config || serverId === undefined) return;
      const joining = config.spaces.flatMap((s) => s.partitions).filter((p) => p.joining);
      this.set({ direction: 'receiving' }, joining.filter((p) => p.joining!.server === serverId).length);
      this.set({ direction: 'sending' }, joining.filter((p) => p.chain[p.chain.length - 1] === serverId).length);
    } });
    // Both per-level gauges from one reading of the MANIFEST, taken by the first of them: prom-client asks each
    // metric in the order registered, so the second is read after the first has set it, never a scrape behind.
    const tableBytes = new Gauge({ name: 'kv_leveldb_table_bytes', help: 'bytes in LevelDB table files of the current version, by level', labelNames: ['level'] });
    new Gauge({ name: 'kv_leveldb_tables', help: 'LevelDB table files of the current version, by level', labelNames: ['level'], registers, collect() {
      this.reset();
      tableBytes.reset();
      for (const [level, { files, bytes }] of leveldbLevels(leveldbDir)) {
        this.set({ level: String(level) }, files);
        tableBytes.set({ level: String(level) }, bytes);
      }
    } });
    registry.registerMetric(tableBytes);
    new Gauge({ name: 'kv_leveldb_bytes', help: "bytes of every file in the daemon's LevelDB directory (tables, logs, manifest)", registers, collect() {
      this.set(directoryBytes(leveldbDir));
    } });
  }

  /** A request of `type` answered `code` (`ok` for an answer) `seconds` after it was read. */
  answered(type: string, code: string, seconds: number): void {
    const key = `${type}\u0000${code}`;
    let child = this.bound.get(key);
    if (!child) this.bound.set(key, (child = { count: this.requests.labels(type, code) }));
    child.count.inc();
    let timer = this.timers.get(type);
    if (!timer) this.timers.set(type, (timer = this.latency.labels(type)));
    timer.observe(seconds);
  }

  committed(operations: number, synced: boolean, seconds: number): void {
    this.commitGroups.observe(operations);
    this.commitSeconds.observe(seconds);
    if (synced) this.fsyncs.inc();
  }

  running(config: ClusterConfig): void {
    this.version.set(config.version);
    this.epoch.set(config.epoch ?? 0);
  }
}

/** Files and bytes per level of the current LevelDB version; empty when it cannot be read (being written, gone). */
function leveldbLevels(dir: string): Map<number, { files: number; bytes: number }> {
  const levels = new Map<number, { files: number; bytes: number }>();
  try {
    const state = parseManifest(readFileSync(join(dir, readFileSync(join(dir, 'CURRENT'), 'utf8').trim())));
    for (const [number, size] of state.tables) {
      const level = state.levels.get(number) ?? 0;
      const at = levels.get(level) ?? { files: 0, bytes: 0 };
      levels.set(level, { files: at.files + 1, bytes: at.bytes + size });
    }
  } catch {
    // a compaction replaced the MANIFEST between the two reads: the next scrape reads the new one
  }
  return levels;
}

function directoryBytes(dir: string): number {
  let bytes = 0;
  try {
    for (const name of readdirSync(dir)) {
      try {
        bytes += statSync(join(dir, name)).size;
      } catch {
        // deleted meanwhile (an obsolete table)
      }
    }
  } catch {
    // no directory yet
  }
  return bytes;
}

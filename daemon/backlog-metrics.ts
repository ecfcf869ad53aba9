// What waits on a daemon, for Prometheus (shared/metrics.ts): entries in the partitions' write queues, and batches
// committed here that the rest of their chain has not acknowledged (the replication lag). All read from the
// replicas' own state at scrape time, so nothing is counted per write. Per-partition series exist only while
// something is pending there: they are reset at each scrape, so their number stays bounded by what is out now.
import { Gauge, type Registry } from 'prom-client';
import type { ClusterConfig } from '../shared/config.js';
import type { Unacknowledged } from './replica.js';

/** What the gauges read of one replica (replica.ts). */
export interface BacklogSource {
  readonly spaceId: number;
  readonly partition: number;
  readonly queueDepth: { waiting: number; inBatch: number };
  readonly replicationPending: Unacknowledged | undefined;
}

export function registerBacklogMetrics(
  registry: Registry,
  replicas: () => Iterable<BacklogSource>,
  config: () => ClusterConfig | undefined,
): void {
  const registers = [registry];
  const sum = (of: (replica: BacklogSource) => number) => {
    let total = 0;
    for (const replica of replicas()) total += of(replica);
    return total;
  };
  new Gauge({ name: 'kv_write_queue_depth', help: 'entries waiting in the partition write queues for a batch (client writes, batches from a predecessor, tasks)', registers, collect() {
    this.set(sum((r) => r.queueDepth.waiting));
  } });
  new Gauge({ name: 'kv_write_queue_in_batch', help: 'entries of the batches the partition write queues are committing and replicating now', registers, collect() {
    this.set(sum((r) => r.queueDepth.inBatch));
  } });

  /** The replicas with a batch out, each with its space's name (the id while a removed space is dropped). */
  const pending = () => {
    const names = new Map((config()?.spaces ?? []).map((s) => [s.id, s.name]));
    const out: Array<{ labels: { space: string; partition: string }; batch: Unacknowledged }> = [];
    for (const replica of replicas()) {
      const batch = replica.replicationPending;
      if (batch) out.push({ labels: { space: names.get(replica.spaceId) ?? `#${replica.spaceId}`, partition: String(replica.partition) }, batch });
    }
    return out;
  };
  const ageSeconds = (batch: Unacknowledged, nowMs: number) => Math.max(0, nowMs - batch.sinceMs) / 1000;
  new Gauge({ name: 'kv_replication_pending_changes', help: 'keys committed here and sent down the chain that its tail has not acknowledged, by partition (only where some are)', labelNames: ['space', 'partition'], registers, collect() {
    this.reset();
    for (const { labels, batch } of pending()) this.set(labels, batch.changes);
  } });
  new Gauge({ name: 'kv_replication_lag_seconds', help: 'age of the oldest change committed here that the chain has not acknowledged, by partition (only where one is)', labelNames: ['space', 'partition'], registers, collect() {
    this.reset();
    const nowMs = performance.now();
    for (const { labels, batch } of pending()) this.set(labels, ageSeconds(batch, nowMs));
  } });
  new Gauge({ name: 'kv_replication_daemon_pending_changes', help: 'keys committed here that their chains have not acknowledged, over every partition', registers, collect() {
    this.set(sum((r) => r.replicationPending?.changes ?? 0));
  } });
  new Gauge({ name: 'kv_replication_daemon_lag_seconds', help: 'age of the oldest change committed here that its chain has not acknowledged, over every partition (0: none)', registers, collect() {
    const nowMs = performance.now();
    let oldest = 0;
    for (const replica of replicas()) {
      const batch = replica.replicationPending;
      if (batch) oldest = Math.max(oldest, ageSeconds(batch, nowMs));
    }
    this.set(oldest);
  } });
}

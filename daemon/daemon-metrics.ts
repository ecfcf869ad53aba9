// What a daemon counts for Prometheus (shared/metrics.ts): requests by type and outcome, their latency, the config
// it runs, freezes, and snapshots held. Children are bound once per (type, code), so counting costs a Map lookup.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ClusterConfig } from '../shared/config.js';

export class DaemonMetrics {
  private readonly requests: Counter<'type' | 'code'>;
  private readonly latency: Histogram<'type'>;
  private readonly bound = new Map<string, { count: Counter.Internal }>();
  private readonly timers = new Map<string, Histogram.Internal<'type'>>();
  private readonly version: Gauge;
  private readonly epoch: Gauge;
  readonly freezes: Counter;
  readonly frozenSeconds: Counter;

  constructor(
    readonly registry: Registry,
    snapshotsHeld: () => number,
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
    this.freezes = new Counter({ name: 'kv_freezes_total', help: 'backup freezes this daemon held writes for', registers });
    this.frozenSeconds = new Counter({ name: 'kv_frozen_seconds_total', help: 'time this daemon held writes for backups', registers });
    new Gauge({ name: 'kv_snapshots_held', help: 'backup snapshots kept on this daemon', registers, collect() { this.set(snapshotsHeld()); } });
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

  running(config: ClusterConfig): void {
    this.version.set(config.version);
    this.epoch.set(config.epoch ?? 0);
  }
}

// What a coordinator tells Prometheus (shared/metrics.ts): whether it leads, the config it leads with (version,
// epoch, servers by state), and backups (results, and when the last good one ended). Read from the process at
// scrape time, so a follower reports what it knows: that it does not lead.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClusterConfig } from '../shared/config.js';

export class CoordinatorMetrics {
  private readonly backups: Counter<'result'>;
  private readonly lastGood: Gauge;

  constructor(
    readonly registry: Registry,
    view: () => { leading: boolean; config: ClusterConfig | undefined; epoch: number | undefined },
  ) {
    const registers = [registry];
    new Gauge({ name: 'kv_coordinator_leading', help: '1 while this coordinator leads', registers, collect() { this.set(view().leading ? 1 : 0); } });
    new Gauge({ name: 'kv_config_version', help: 'version of the cluster config (while leading)', registers, collect() {
      const { config } = view();
      if (config) this.set(config.version);
    } });
    new Gauge({ name: 'kv_config_epoch', help: 'epoch of this leadership (while leading)', registers, collect() {
      const { epoch } = view();
      if (epoch !== undefined) this.set(epoch);
    } });
    new Gauge({ name: 'kv_servers', help: 'daemons in the config, by state (while leading)', labelNames: ['state'], registers, collect() {
      const { config } = view();
      this.reset();
      if (!config) return;
      for (const state of ['available', 'not_available', 'shutdown'] as const) this.set({ state }, config.servers.filter((s) => s.state === state).length);
    } });
    new Gauge({ name: 'kv_transfers_in_progress', help: 'partitions receiving a state transfer (while leading)', registers, collect() {
      const { config } = view();
      this.set(config ? config.spaces.flatMap((s) => s.partitions).filter((p) => p.joining).length : 0);
    } });
    this.backups = new Counter({ name: 'kv_backups_total', help: 'backups run by this coordinator, by result (ok or the error code)', labelNames: ['result'], registers });
    this.lastGood = new Gauge({ name: 'kv_backup_last_success_timestamp_seconds', help: 'when the last backup this coordinator ran succeeded (unix seconds)', registers });
  }

  backupEnded(result: string): void {
    this.backups.inc({ result });
    if (result === 'ok') this.lastGood.setToCurrentTime();
  }
}

// What a coordinator tells Prometheus (shared/metrics.ts): whether it leads, the config it leads with (version,
// epoch, servers by state), backups (results, and when the last good one ended), and the requests it answered by
// type and outcome. The state is read from the process at scrape time, so a follower reports what it knows: that
// it does not lead.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClusterConfig } from '../shared/config.js';
import type { Connection } from '../shared/connection.js';
import type { KvError } from '../shared/errors.js';

/** Where a request's answer goes: its connection, or a wrapper that counts the answer on its way there. */
export type Answers = Pick<Connection, 'reply' | 'fail'>;

export class CoordinatorMetrics {
  private readonly backups: Counter<'result'>;
  private readonly lastGood: Gauge;
  private readonly requests: Counter<'type' | 'code'>;
  /** Children bound once per (type, code), so counting an answer costs a Map lookup. */
  private readonly bound = new Map<string, Counter.Internal>();

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
    this.requests = new Counter({ name: 'kv_coordinator_requests_total', help: 'requests the coordinator answered, by type and outcome (ok or the error code)', labelNames: ['type', 'code'], registers });
  }

  /** The answers to one request of `type`, counted as they go out on `connection`. */
  counting(connection: Connection, type: string): Answers {
    return {
      reply: (id: number, result: unknown) => {
        connection.reply(id, result);
        this.answered(type, 'ok');
      },
      fail: (id: number | null, error: KvError) => {
        connection.fail(id, error);
        this.answered(type, error.code);
      },
    };
  }

  private answered(type: string, code: string): void {
    const key = `${type}\u0000${code}`;
    let child = this.bound.get(key);
    if (!child) this.bound.set(key, (child = this.requests.labels(type, code)));
    child.inc();
  }

  backupEnded(result: string): void {
    this.backups.inc({ result });
    if (result === 'ok') this.lastGood.setToCurrentTime();
  }
}

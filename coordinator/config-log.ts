// The config log: the one owner of the cluster config during one leadership. Every change goes through
// `change()`: a pure transition (cluster.ts), placement (placement.ts), persist through the leadership (a fenced
// write: config-store.ts), and only then publish to daemons and subscribers. Changes run one at a time, in arrival
// order. Once the leadership has ended nothing is changed, persisted or published: the new leader does that.
import type { ClusterConfig } from '../shared/config.js';
import type { Connection } from '../shared/connection.js';
import { KvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { Message } from '../shared/protocol.js';
import type { Leadership } from './config-store.js';
import { configChanges } from './config-changes.js';
import { place, type PlaceOptions } from './placement.js';

/** A change persisted and not yet published (`ConfigLog.changeAndStage`). */
export interface StagedChange {
  /** The config as persisted. */
  readonly config: ClusterConfig;
  /** Makes it current and sends it to daemons and subscribers; later calls return the same config. */
  publish(): ClusterConfig;
}

export interface ConfigLogHooks {
  /** What placement needs from the daemon sessions, read at each change. */
  placement(): Omit<PlaceOptions, 'version'>;
  /** The connections of the daemon sessions, which get every config. */
  daemons(): Iterable<Connection>;
  log: Logger;
}

export class ConfigLog {
  private config: ClusterConfig;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly subscribers = new Set<Connection>();

  /** `initial`: the config this leadership starts from; `begin()` persists it. */
  constructor(
    private readonly leadership: Leadership,
    initial: ClusterConfig,
    private readonly hooks: ConfigLogHooks,
  ) {
    this.config = initial;
  }

  get current(): ClusterConfig {
    return this.config;
  }

  /** Whether this leadership still holds (config-store.ts): checked before anything is granted. */
  get leading(): boolean {
    return this.leadership.leading;
  }

  get epoch(): number {
    return this.leadership.epoch;
  }

  /**
   * Persists the starting config with this leadership's epoch and a version above the stored one, so every daemon
   * takes it over what the previous leader pushed (shared/config.ts `supersedes`).
   */
  begin(): Promise<ClusterConfig> {
    const stored = this.leadership.stored;
    return this.run(async () => {
      const first = { ...this.config, epoch: this.leadership.epoch, version: Math.max(this.config.version, (stored?.version ?? 0) + 1) };
      await this.leadership.save(first);
      this.config = first;
      return first;
    });
  }

  /** Runs one change: transition, placement, persist, publish. */
  change(transition: (config: ClusterConfig) => ClusterConfig): Promise<ClusterConfig> {
    return this.run(async () => {
      const next = this.next(transition, this.config);
      if (next !== this.config) await this.leadership.save(next);
      return this.install(next);
    });
  }

  /**
   * Two changes, the second held back: persists the config after both (one save; the first's is never stored on
   * its own, and the store is never behind what was published), publishes the first's, and returns the second's
   * staged, to be published when the caller says. No other change runs until then, so what is published is what
   * the first and second transitions made. A backup's freeze and thaw: the freeze then waits for the store only
   * before it begins, and once the captures are in, the thaw is a message away. The caller must publish on every
   * path (until then every other change waits); a failed save rejects, having published nothing and holding nothing.
   */
  changeAndStage(first: (config: ClusterConfig) => ClusterConfig, then: (config: ClusterConfig) => ClusterConfig): Promise<{ changed: ClusterConfig; staged: StagedChange }> {
    return new Promise((resolve, reject) => {
      void this.run(async () => {
        let changed: ClusterConfig;
        let next: ClusterConfig;
        try {
          changed = this.next(first, this.config);
          next = this.next(then, changed);
          if (next !== this.config) await this.leadership.save(next);
        } catch (error) {
          reject(error);
          return;
        }
        this.install(changed);
        await new Promise<void>((released) => {
          let published: ClusterConfig | undefined;
          const publish = () => {
            if (!published) {
              published = this.install(next);
              released();
            }
            return published;
          };
          resolve({ changed, staged: { config: next, publish } });
        });
      });
    });
  }

  /** A transition's next config after `from`, placed and stamped with the epoch; `from` itself when nothing changes. */
  private next(transition: (config: ClusterConfig) => ClusterConfig, from: ClusterConfig): ClusterConfig {
    if (!this.leadership.leading) throw new KvError('NOT_LEADER', 'this coordinator no longer leads; the change was not made');
    let next = transition(from);
    const version = next === from ? next.version + 1 : next.version;
    const placed = place(next, { ...this.hooks.placement(), version });
    if (placed !== next) next = { ...placed, version };
    return next === from ? from : { ...next, epoch: this.leadership.epoch };
  }

  /** Makes a persisted config the current one and sends it (unless it is the current one already). */
  private install(next: ClusterConfig): ClusterConfig {
    if (next === this.config) return next;
    if (this.hooks.log.isLevelEnabled('debug')) {
      for (const change of configChanges(this.config, next)) this.hooks.log.debug({ version: next.version, ...change }, 'config change');
    }
    this.config = next;
    // Saved, but deposed meanwhile: the new leader read this config after it was saved, and publishes its own.
    if (this.leadership.leading) this.publish();
    return next;
  }

  /** Follows every config from now on (until the connection closes). */
  subscribe(connection: Connection): ClusterConfig {
    this.subscribers.add(connection);
    connection.onceClosed(() => this.subscribers.delete(connection));
    return this.config;
  }

  /** Resolves once every change asked for so far has finished. */
  idle(): Promise<void> {
    return this.queue.then(() => {});
  }

  private run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => {});
    return result;
  }

  private publish(): void {
    const push: Message = { t: 'config', config: this.config };
    for (const connection of this.hooks.daemons()) connection.send(push);
    for (const subscriber of this.subscribers) subscriber.send(push);
    this.hooks.log.info({ version: this.config.version, epoch: this.leadership.epoch }, 'config published');
  }
}

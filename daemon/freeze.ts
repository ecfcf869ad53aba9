// The daemon's side of a backup freeze, and the one owner of "is this daemon frozen". A config carrying a freeze
// holds the replicas' writes; a config without it, or the lease running out, releases it. A freeze that ended by its
// lease is remembered, so the same config arriving again (a reconnect) does not freeze the daemon twice, and a
// late capture for it fails instead of snapshotting after writes moved on.
import type { Freeze } from '../shared/config.js';
import { KvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { Replicas } from './replicas.js';

interface Active {
  freeze: Freeze;
  frozenAt: number;
  quiesced: Promise<void>;
  lease: NodeJS.Timeout;
}

const endedRemembered = 64;

export class FreezeKeeper {
  private active: Active | undefined;
  private readonly ended: string[] = [];

  constructor(
    private readonly replicas: Replicas,
    private readonly log: Logger,
    /** Told of every freeze and thaw (metrics). */
    private readonly observer?: { frozen(): void; thawed(heldMs: number): void },
  ) {}

  /** Follows the freeze of the config this daemon now runs. */
  apply(freeze: Freeze | undefined): void {
    if (this.active && this.active.freeze.id !== freeze?.id) this.thaw('config');
    if (freeze && !this.active && !this.ended.includes(freeze.id)) this.begin(freeze);
  }

  /** Waits until writes admitted before the freeze are committed; fails unless still frozen under `freezeId`. */
  async quiesced(freezeId: string): Promise<number> {
    const active = this.current(freezeId);
    await active.quiesced;
    this.current(freezeId);
    return performance.now() - active.frozenAt;
  }

  /** Throws unless this daemon is frozen under `freezeId` right now. */
  current(freezeId: string): Active {
    if (this.active?.freeze.id === freezeId) return this.active;
    const why = this.ended.includes(freezeId) ? 'has ended' : 'is not in force on this daemon';
    throw new KvError('BACKUP_FAILED', `freeze ${freezeId} ${why}`);
  }

  /** Ends any freeze (shutdown). */
  stop(): void {
    if (this.active) this.thaw('shutdown');
  }

  private begin(freeze: Freeze): void {
    const lease = setTimeout(() => this.thaw('lease expired'), freeze.leaseMs);
    this.active = { freeze, frozenAt: performance.now(), quiesced: this.replicas.hold(), lease };
    this.log.info({ freezeId: freeze.id, backup: freeze.name, leaseMs: freeze.leaseMs }, 'frozen');
    this.observer?.frozen();
  }

  private thaw(reason: string): void {
    const active = this.active;
    if (!active) return;
    this.active = undefined;
    clearTimeout(active.lease);
    this.ended.push(active.freeze.id);
    if (this.ended.length > endedRemembered) this.ended.shift();
    const released = this.replicas.release();
    const heldMs = Math.round(performance.now() - active.frozenAt);
    this.observer?.thawed(performance.now() - active.frozenAt);
    const fields = { freezeId: active.freeze.id, backup: active.freeze.name, heldMs, released, reason };
    if (reason === 'lease expired') this.log.warn(fields, 'thawed by the lease: the coordinator did not end the freeze');
    else this.log.info(fields, 'thawed');
  }
}

// The cluster's backup lock: at most one backup at a time, with a visible owner, renewed by its holder and
// expiring by itself when the holder stops renewing (it died). Kept by the leading coordinator, in memory, one
// keeper per leadership: it ends with the leader's lease (a restart, a failover or a step-down ends every backup
// anyway: the backup's state machine ran in that process), and a renewal never takes the lock anew.
import { KvError } from '../shared/errors.js';
import type { BackupLock } from '../shared/protocol.js';

export class BackupLockKeeper {
  private held: (BackupLock & { expiresAtMs: number }) | undefined;

  constructor(
    /** The leadership this keeper belongs to. */
    private readonly epoch: number,
    private readonly now: () => number = Date.now,
  ) {}

  get current(): BackupLock | undefined {
    if (this.held && this.held.expiresAtMs <= this.now()) this.held = undefined;
    if (!this.held) return undefined;
    const { expiresAtMs: _, ...lock } = this.held;
    return lock;
  }

  /** Takes the lock, or renews it for the holder of `token`; with `renew`, only renews. */
  acquire(name: string, owner: string, token: string, ttlMs: number, renew = false): BackupLock {
    const current = this.current;
    if (renew && current?.token !== token) {
      throw new KvError(
        'BACKUP_FAILED',
        current
          ? `the backup lock is held by ${current.owner} now`
          : `the backup lock ended: it expired, or the coordinator leader that granted it is gone (this one leads since epoch ${this.epoch})`,
      );
    }
    if (current && current.token !== token) {
      throw new KvError(
        'BACKUP_IN_PROGRESS',
        `backup ${current.name} is running (owner ${current.owner}, since ${current.startedAt}, lock expires ${current.expiresAt})`,
      );
    }
    const now = this.now();
    this.held = {
      epoch: this.epoch,
      name: current?.name ?? name,
      owner: current?.owner ?? owner,
      token,
      startedAt: current?.startedAt ?? new Date(now).toISOString(),
      expiresAt: new Date(now + ttlMs).toISOString(),
      expiresAtMs: now + ttlMs,
    };
    return this.current!;
  }

  /** Checks that `token` holds the lock now. */
  check(token: string): BackupLock {
    const current = this.current;
    if (current?.token === token) return current;
    throw new KvError('BACKUP_FAILED', current ? `the backup lock is held by ${current.owner}` : 'the backup lock expired');
  }

  release(token: string): void {
    if (this.held?.token === token) this.held = undefined;
  }
}

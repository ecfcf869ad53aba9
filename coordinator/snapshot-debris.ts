// Snapshots that failed backups leave on daemons, and their release. Two kinds:
//  - a release a backing-out attempt could not deliver (the daemon was gone): owed to that daemon, by name and
//    freeze id, and delivered when it registers again. Always safe: it deletes only what that attempt made.
//  - unsealed snapshots. Only a running backup makes or uses one (prepare, capture and seal all happen inside it),
//    so while none runs every unsealed snapshot is debris: of a prepare that reached its daemon after the attempt
//    had failed, or of a coordinator or daemon that died in the middle of a backup. They are swept when a daemon
//    registers and when a backup starts, and a backup waits for a sweep under way.
// Sealed snapshots are never swept: a backup-manager run may be copying them (it holds the backup lock then, with
// no backup running here), and those of `kv backup` are kept until `kv backup-release`.
import { asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { snapshotReleaseMsMax, snapshotReleasesOwedMax } from '../shared/limits.js';
import type { RequestOf, RequestType, Results } from '../shared/protocol.js';

type Ask = <T extends RequestType>(serverId: string, request: { t: T } & RequestOf<T>, timeoutMs: number) => Promise<Results[T]>;

export class SnapshotDebris {
  /** Per server: releases owed, keyed by name and freeze id. */
  private readonly owed = new Map<string, Map<string, { name: string; freezeId: string }>>();
  private running = 0;
  private sweeping: Promise<void> = Promise.resolve();

  constructor(
    private readonly ask: Ask,
    private readonly log: Logger,
  ) {}

  owe(serverId: string, name: string, freezeId: string): void {
    const mine = this.owed.get(serverId) ?? new Map<string, { name: string; freezeId: string }>();
    if (mine.size >= snapshotReleasesOwedMax) mine.delete(mine.keys().next().value!);
    mine.set(`${name}\u0000${freezeId}`, { name, freezeId });
    this.owed.set(serverId, mine);
  }

  /** Runs a backup: after any sweep under way, and after clearing what earlier backups left on `serverIds`. */
  async duringBackup<T>(serverIds: string[], run: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      await this.sweeping;
      // This backup holds the lock, so no other runs: every unsealed snapshot is an earlier one's.
      await Promise.all(serverIds.map((id) => this.clear(id, () => true)));
      return await run();
    } finally {
      this.running--;
    }
  }

  /** A daemon registered: it gets what it is owed and, unless a backup is running, its unsealed snapshots swept. */
  onRegistered(serverId: string): void {
    this.sweeping = this.sweeping.then(() => this.clear(serverId, () => this.running === 0)).catch((error) =>
      this.log.warn({ serverId, err: asKvError(error).message }, 'cannot clear the snapshots failed backups left'),
    );
  }

  private async clear(serverId: string, maySweep: () => boolean): Promise<void> {
    const mine = this.owed.get(serverId);
    for (const [key, { name, freezeId }] of mine ?? []) {
      try {
        const released = await this.ask(serverId, { t: 'release_snapshot', name, freezeId }, snapshotReleaseMsMax);
        mine!.delete(key);
        if (released) this.log.info({ serverId, backup: name, freezeId }, 'released a snapshot a failed backup attempt owed');
      } catch {
        return; // gone again: still owed
      }
    }
    if (mine?.size === 0) this.owed.delete(serverId);
    if (!maySweep()) return;
    const snapshots = await this.ask(serverId, { t: 'snapshots' }, snapshotReleaseMsMax).catch(() => []);
    for (const snapshot of snapshots.filter((s) => !s.sealed)) {
      if (!maySweep()) return;
      const released = await this.ask(serverId, { t: 'release_snapshot', name: snapshot.name, freezeId: null }, snapshotReleaseMsMax).catch(() => false);
      if (released) this.log.info({ serverId, backup: snapshot.name, state: snapshot.state, owner: snapshot.owner }, 'released an unsealed snapshot no running backup owns');
    }
  }
}

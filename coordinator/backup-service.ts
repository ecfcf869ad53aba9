// Backups, as the leading coordinator serves them: the backup lock (backup-lock.ts), running the backup's state
// machine (backup.ts) against this leadership's config log and daemon sessions, and the snapshots failed backups
// leave (snapshot-debris.ts). One instance per leadership: the lock and a running backup end with it.
import { randomUUID } from 'node:crypto';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { backupLockMsDefault, snapshotReleaseMsMax } from '../shared/limits.js';
import type { LastBackup, MessageOf, RequestOf, RequestType, Results } from '../shared/protocol.js';
import { runBackup, type BackupHost } from './backup.js';
import { BackupLockKeeper } from './backup-lock.js';
import type { ConfigLog } from './config-log.js';
import type { DaemonSessions } from './daemon-sessions.js';
import { SnapshotDebris } from './snapshot-debris.js';

export interface BackupServiceOptions {
  log: Logger;
  /** Testing only: how long a backup stalls after freezing (to kill things mid-freeze). */
  faultStallAfterFreezeMs?: number | undefined;
  /** Told how each backup ended (metrics): `ok` or its error code. */
  onEnded?: ((result: string) => void) | undefined;
  /** Testing only: stall backups on entering a state (backup.ts `stallAt`). */
  faultStallAt?: BackupHost['stallAt'];
}

export class BackupService {
  readonly lock: BackupLockKeeper;
  /** The last backup this term ran, for kv status. */
  last: LastBackup | null = null;
  private readonly debris: SnapshotDebris;

  constructor(
    private readonly configLog: ConfigLog,
    private readonly sessions: DaemonSessions,
    private readonly options: BackupServiceOptions,
  ) {
    this.lock = new BackupLockKeeper(configLog.epoch);
    this.debris = new SnapshotDebris((serverId, request, timeoutMs) => this.ask(serverId, request, timeoutMs), options.log);
  }

  /** A daemon registered: deliver the releases owed to it, sweep what backups left there. */
  onRegistered(serverId: string): void {
    this.debris.onRegistered(serverId);
  }

  /** The lock as show-config shows it (no token). */
  visibleLock() {
    const lock = this.lock.current;
    return lock ? { name: lock.name, owner: lock.owner, startedAt: lock.startedAt, expiresAt: lock.expiresAt, epoch: lock.epoch } : null;
  }

  /** Runs a backup under the lock: the caller's (backup-manager holds one across its copy) or one of its own. */
  async backup(request: MessageOf<'backup'>) {
    const ownLock = request.lockToken === null ? randomUUID() : undefined;
    if (ownLock) this.lock.acquire(request.name, request.owner, ownLock, request.deadlineMs + backupLockMsDefault);
    else this.lock.check(request.lockToken!);
    const host: BackupHost = {
      config: () => this.configLog.current,
      changeAndStage: (first, then) => this.configLog.changeAndStage(first, then),
      ask: (serverId, req, timeoutMs) => this.ask(serverId, req, timeoutMs),
      owe: (serverId, name, freezeId) => this.debris.owe(serverId, name, freezeId),
      log: this.options.log,
      ...(this.options.faultStallAfterFreezeMs ? { stallAfterFreezeMs: this.options.faultStallAfterFreezeMs } : {}),
      ...(this.options.faultStallAt ? { stallAt: this.options.faultStallAt } : {}),
    };
    try {
      const connected = this.configLog.current.servers.filter((s) => this.sessions.connected(s.id)).map((s) => s.id);
      const result = await this.debris.duringBackup(connected, () => runBackup(request, host));
      this.options.onEnded?.('ok');
      this.last = { name: request.name, ok: true, endedAt: new Date().toISOString(), freezeMs: result.freeze.ms };
      return result;
    } catch (error) {
      const kvError = asKvError(error);
      this.options.onEnded?.(kvError.code === 'BAD_REQUEST' || kvError.code === 'BACKUP_IN_PROGRESS' ? kvError.code : 'BACKUP_FAILED');
      this.last = { name: request.name, ok: false, endedAt: new Date().toISOString(), error: kvError.message };
      // A refused request (a name taken on a daemon) stays what it is, so the caller can tell it from a failure;
      // the code is the contract, so it is not repeated inside the message.
      if (kvError.code === 'BACKUP_FAILED' || kvError.code === 'BACKUP_IN_PROGRESS' || kvError.code === 'BAD_REQUEST') throw kvError;
      throw new KvError('BACKUP_FAILED', `backup ${request.name} failed: ${kvError.message}`);
    } finally {
      if (ownLock) this.lock.release(ownLock);
    }
  }

  /** Asks every connected daemon to delete snapshot `name`. */
  release(name: string) {
    return Promise.all(
      this.configLog.current.servers.map(async (server) => {
        try {
          return { serverId: server.id, released: await this.ask(server.id, { t: 'release_snapshot', name, freezeId: null }, snapshotReleaseMsMax) };
        } catch (error) {
          return { serverId: server.id, released: false, error: asKvError(error).message };
        }
      }),
    );
  }

  /** Every daemon's snapshots; a daemon that cannot answer is listed with why. */
  list() {
    return Promise.all(
      this.configLog.current.servers.map(async (server) => {
        try {
          return { serverId: server.id, snapshots: await this.ask(server.id, { t: 'snapshots' }, snapshotReleaseMsMax) };
        } catch (error) {
          return { serverId: server.id, snapshots: [], error: asKvError(error).message };
        }
      }),
    );
  }

  private ask<T extends RequestType>(serverId: string, request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]> {
    return this.sessions.ask(serverId, request, timeoutMs);
  }
}

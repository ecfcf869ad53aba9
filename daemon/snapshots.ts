// The daemon's snapshots, as the coordinator asks for them during a backup: capture (under a freeze, once the
// writes admitted before it are committed), seal (after the thaw), release (once copied, or on failure).
// A snapshot prepared on a coordinator session and not captured when that session closes is released then: the
// attempt it was for cannot go on (the coordinator asks on its current session, and an attempt's requests are
// answered on the session they came on), and a prepare that reaches the daemon after its attempt failed (sent
// into a network cut, delivered after the heal) would otherwise stay for good.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { manifestFileName, readManifest } from '../shared/snapshot-manifest.js';
import { KvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { CaptureResult, SealResult, SnapshotInfo } from '../shared/protocol.js';
import type { FreezeKeeper } from './freeze.js';
import { backupsDir, snapshotDir } from '../shared/data-dir.js';
import { capture, prepare, seal, type Capture, type Prepared } from './snapshot.js';
import type { Identity } from './storage.js';
import { HashPool } from '../shared/hash-pool.js';

/** The coordinator session a request came on, as far as snapshots care. */
export interface Session {
  readonly closed: boolean;
  onceClosed(listener: () => void): void;
}

export class SnapshotKeeper {
  /** Checksums of table files, kept between backups (tables never change). */
  private readonly tableSums = new Map<string, string>();
  /** Seals hash here, off the event loop that serves reads and writes. */
  private readonly hashes = new HashPool();
  /**
   * Snapshots prepared (tables linked before the freeze) and not yet captured, with the session they came on and
   * what the capture can go on from.
   */
  private readonly prepared = new Map<string, { owner: string | null; session: Session; found?: Prepared }>();
  /** Sessions whose close is watched (one listener each, however many backups they carry). */
  private readonly watched = new WeakSet<Session>();
  /** Snapshots captured since this daemon started, by name, until released. */
  private readonly captured = new Map<string, { capture: Capture; capturedAt: string; freezeId: string; owner: string | null }>();

  constructor(
    private readonly dataDir: string,
    private readonly freezes: FreezeKeeper,
    private readonly identity: () => Identity | undefined,
    private readonly log: Logger,
  ) {}

  /** Before the freeze: refuses a name in use, then links the current tables (most of the capture's work). */
  prepare(name: string, owner: string | null, session: Session): { tables: number } {
    const dir = snapshotDir(this.dataDir, name);
    if (existsSync(dir) && !this.prepared.has(name)) {
      throw new KvError('BAD_REQUEST', `a snapshot named ${name} exists already on this daemon; release it or pick another name`);
    }
    this.prepared.set(name, { owner, session });
    if (!this.watched.has(session)) {
      this.watched.add(session);
      session.onceClosed(() => this.releasePreparedOn(session));
    }
    const found = prepare(this.dataDir, dir);
    const entry = this.prepared.get(name);
    if (entry && found) entry.found = found;
    return { tables: found?.linked.size ?? 0 };
  }

  private releasePreparedOn(session: Session): void {
    for (const [name, prepared] of this.prepared) {
      if (prepared.session !== session) continue;
      if (this.release(name, null)) this.log.info({ backup: name }, 'released a snapshot prepared on a coordinator session that has closed');
    }
  }

  async capture(freezeId: string, name: string): Promise<CaptureResult> {
    const dir = snapshotDir(this.dataDir, name);
    if (existsSync(dir) && !this.prepared.has(name)) {
      throw new KvError('BAD_REQUEST', `a snapshot named ${name} exists already on this daemon; release it or pick another name`);
    }
    const quiescedMs = await this.freezes.quiesced(freezeId);
    // From here to the end of the capture there is no await: nothing can thaw the freeze in between.
    this.freezes.current(freezeId);
    const prepared = this.prepared.get(name);
    const result = capture(this.dataDir, dir, prepared?.found);
    const owner = prepared?.owner ?? null;
    this.prepared.delete(name);
    this.captured.set(name, { capture: result, capturedAt: new Date().toISOString(), freezeId, owner });
    const bytes = result.files.reduce((sum, f) => sum + f.bytes, 0);
    this.log.info({ backup: name, files: result.files.length, bytes, quiescedMs, captureMs: result.ms, attempts: result.attempts, tablesLinked: result.tablesLinked }, 'snapshot captured');
    return { files: result.files.length, bytes, quiescedMs, captureMs: result.ms, attempts: result.attempts };
  }

  async seal(name: string, configVersion: number, owner: string): Promise<SealResult> {
    const captured = this.captured.get(name);
    const identity = this.identity();
    if (!captured || !identity) throw new KvError('BACKUP_FAILED', `no captured snapshot named ${name} on this daemon`);
    const dir = snapshotDir(this.dataDir, name);
    const started = performance.now();
    const manifest = await seal(dir, captured.capture, {
      name,
      serverId: identity.serverId,
      clusterId: identity.clusterId,
      configVersion,
      freezeId: captured.freezeId,
      capturedAt: captured.capturedAt,
      owner,
    }, this.tableSums, this.hashes);
    const bytes = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
    this.log.info({ backup: name, files: manifest.files.length, bytes, sealMs: Math.round(performance.now() - started) }, 'snapshot sealed');
    return { path: resolve(dir), files: manifest.files.length, bytes };
  }

  /**
   * Deletes a snapshot; true when there was one. Hard links mean the live database is unaffected. Given a
   * freezeId, deletes only a snapshot captured under that freeze (or one never sealed), so a backup backing out
   * can never delete an older snapshot that happens to share its name.
   */
  release(name: string, freezeId: string | null): boolean {
    const dir = snapshotDir(this.dataDir, name);
    if (!existsSync(dir)) {
      this.captured.delete(name);
      this.prepared.delete(name);
      return false;
    }
    const under = this.capturedUnder(name);
    // Not ours to delete: a sealed snapshot taken under another freeze. Unsealed debris (null) goes.
    if (freezeId !== null && under !== null && under !== freezeId) return false;
    this.captured.delete(name);
    this.prepared.delete(name);
    rmSync(dir, { recursive: true, force: true });
    this.log.info({ backup: name }, 'snapshot released');
    return true;
  }

  /** The snapshots on disk, sealed or not (an attempt under way, or debris of a backup that failed). */
  list(): SnapshotInfo[] {
    const root = backupsDir(this.dataDir);
    if (!existsSync(root)) return [];
    return readdirSync(root, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry): SnapshotInfo => {
        const name = entry.name;
        const dir = snapshotDir(this.dataDir, name);
        const stat = statSync(dir);
        const createdAt = new Date(stat.birthtimeMs > 0 ? stat.birthtimeMs : stat.mtimeMs).toISOString();
        try {
          const manifest = readManifest(dir);
          const bytes = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
          return { name, sealed: true, state: 'sealed', owner: manifest.owner ?? null, capturedAt: manifest.capturedAt, createdAt, bytes };
        } catch {
          const captured = this.captured.get(name);
          if (captured) {
            const bytes = captured.capture.files.reduce((sum, f) => sum + f.bytes, 0);
            return { name, sealed: false, state: 'captured', owner: captured.owner, capturedAt: captured.capturedAt, createdAt, bytes };
          }
          const prepared = this.prepared.get(name);
          return { name, sealed: false, state: prepared ? 'prepared' : 'left', owner: prepared?.owner ?? null, capturedAt: null, createdAt, bytes: 0 };
        }
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The freeze a snapshot on disk was captured under; null for one never sealed (debris of a crash). */
  private capturedUnder(name: string): string | null {
    const known = this.captured.get(name);
    if (known) return known.freezeId;
    const manifest = join(snapshotDir(this.dataDir, name), manifestFileName);
    if (!existsSync(manifest)) return null;
    try {
      return readManifest(snapshotDir(this.dataDir, name)).freezeId;
    } catch {
      return '(unreadable manifest)';
    }
  }
}

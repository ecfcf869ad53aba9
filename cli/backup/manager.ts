// The backup manager: one consistent, incremental backup of the whole cluster into a backup directory.
//   preflight (rsync present, directory writable) → lock → clear what dead runs left (their partial directories,
//   their snapshots on the daemons) → backup (freeze, snapshot, thaw: the coordinator's job)
//   → copy every daemon's snapshot in parallel with rsync --link-dest → check every file against its manifest
//   → backup.json → rename <ts>.partial to <ts> → LATEST → release the snapshots → prune (--keep).
// Any failure: the partial directory is removed, the snapshots released, LATEST untouched, the lock released.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import type { Client } from '../../shared/client.js';
import { checkWritableDir, fsyncPath, writeFileDurably } from '../../shared/durable-file.js';
import { KvError, asKvError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { backupLockMsDefault } from '../../shared/limits.js';
import type { BackupResult } from '../../shared/protocol.js';
import { manifestFileName, readManifest } from '../../shared/snapshot-manifest.js';
import { checkCopy } from './copy-check.js';
import { HashPool } from '../../shared/hash-pool.js';
import { levelDir } from '../../shared/data-dir.js';
import { decodeState } from '../../shared/state-file.js';
import { replicasAtCut, serversToCopy, type ReplicaChoice } from './replicas.js';
import * as layout from './layout.js';
import type { Progress } from './progress.js';
import { checkRsync, copy, remotePath, type Copy } from './rsync.js';
import { parseOwner, provedGone } from './owner.js';

/** The owner tool name of a backup-manager run (cli/commands/backup-manager.ts). */
export const managerTool = 'kv backup-manager';

export interface ManagerOptions {
  root: string;
  keep: number | undefined;
  rsh: string | undefined;
  /** rsync --timeout: seconds without data before a copy fails (rsyncIoTimeoutSeconds if absent). */
  ioTimeoutSeconds?: number;
  leaseMs: number;
  deadlineMs: number;
  frozenMsMax: number;
  owner: string;
  replicas: ReplicaChoice;
  log: Logger;
  progress: Progress;
  signal: AbortSignal;
}

export interface ServerSummary {
  serverId: string;
  host: string;
  snapshot: string;
  files: number;
  bytes: number;
  copiedFiles: number;
  copiedBytes: number;
  /**
   * Of the copied bytes, those every backup copies whatever changed: the write-ahead logs, MANIFEST and CURRENT
   * (captured as fresh copies, so never the same inode as the previous backup's) and the snapshot manifest.
   */
  alwaysCopiedBytes: number;
  linkedFiles: number;
  linkedBytes: number;
  /** On the daemon, during the freeze: waiting for admitted writes, then capturing the snapshot. */
  quiescedMs: number;
  captureMs: number;
}

export interface BackupSummary {
  format: 'kv-backup';
  formatVersion: 1;
  name: string;
  clusterId: string;
  configVersion: number;
  previous: string | null;
  startedAt: string;
  finishedAt: string;
  totalMs: number;
  attempts: number;
  freeze: BackupResult['freeze'];
  /** The cluster's frozen time over all attempts, backed-out ones included. */
  frozenTotalMs: number;
  /** Whether one replica per partition was copied, or all; and which copied server holds each partition. */
  replicas: ReplicaChoice;
  coverage: Record<string, string[]>;
  /** Snapshotted but not copied (their partitions are covered by the copied ones). */
  skipped: string[];
  servers: ServerSummary[];
  totals: { servers: number; files: number; bytes: number; copiedBytes: number; alwaysCopiedBytes: number; linkedBytes: number };
}

/** Checked before anything touches the cluster. */
export function preflight(root: string) {
  const rsync = checkRsync();
  checkWritableDir(root, 'the backup directory');
  return rsync;
}

const localAddresses = () =>
  new Set(['localhost', ...Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address))]);

/** LevelDB's table files: immutable, so a backup can share them with the previous one. */
const isTable = (fileName: string) => /^\d+\.(ldb|sst)$/.test(fileName);

/** Splits a copied snapshot's bytes into those hard-linked from the previous backup and those copied anew. */
function sharing(dir: string, previousDir: string | undefined) {
  const out = { copiedFiles: 0, copiedBytes: 0, alwaysCopiedBytes: 0, linkedFiles: 0, linkedBytes: 0 };
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) {
        walk(path);
        continue;
      }
      const stat = statSync(path);
      const before = previousDir && join(previousDir, relative(dir, path).split(sep).join('/'));
      if (before && existsSync(before) && statSync(before).ino === stat.ino) {
        out.linkedFiles++;
        out.linkedBytes += stat.size;
      } else {
        out.copiedFiles++;
        out.copiedBytes += stat.size;
        if (!isTable(entry.name)) out.alwaysCopiedBytes += stat.size;
      }
    }
  };
  walk(dir);
  return out;
}

/**
 * Backups are named after the second they start in. A run that starts in the same second as the one before it
 * (they can take less than a second) waits for the next second rather than fail.
 */
async function freshName(root: string): Promise<{ started: Date; name: string }> {
  for (let attempt = 0; ; attempt++) {
    const started = new Date();
    const name = layout.backupName(started);
    if (!existsSync(layout.partialDir(root, name)) && !existsSync(layout.completeDir(root, name))) return { started, name };
    if (attempt === 1) {
      throw new KvError('BAD_REQUEST', `a backup named ${name} exists already in ${root} (is the clock going backwards?)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000 - (started.getTime() % 1000) + 5));
  }
}

export async function runManager(client: Client, options: ManagerOptions): Promise<BackupSummary> {
  const { log, progress, signal } = options;
  const root = resolve(options.root);
  const rsync = preflight(root);
  const { started, name } = await freshName(root);
  const partial = layout.partialDir(root, name);
  const complete = layout.completeDir(root, name);

  // The lock comes first: until it is ours another run may be copying into its own partial directory.
  const token = randomUUID();
  await client.backupLock(name, options.owner, token, backupLockMsDefault);
  log.debug({ backup: name, owner: options.owner }, 'backup lock taken');
  const copies: Copy[] = [];
  // The lock ends with the coordinator leader that granted it (coordinator/backup-lock.ts): once a renewal is
  // refused another run may take it, so this one stops copying and fails rather than finish unguarded.
  let lockLost: KvError | undefined;
  const renew = setInterval(() => {
    client.backupLock(name, options.owner, token, backupLockMsDefault, true).catch((error) => {
      const refusal = asKvError(error);
      if (refusal.code !== 'BACKUP_FAILED') return log.warn({ err: refusal.message }, 'cannot renew the backup lock');
      lockLost ??= new KvError('BACKUP_FAILED', `lost the backup lock: ${refusal.message}`);
      copies.forEach((c) => c.cancel());
    });
  }, backupLockMsDefault / 3);
  let result: BackupResult | undefined;
  const pool = new HashPool();
  const onAbort = () => copies.forEach((c) => c.cancel());
  signal.addEventListener('abort', onAbort);
  try {
    removeDeadPartials(root, log);
    mkdirSync(partial);
    writeFileDurably(layout.ownerFile(partial), `${options.owner}\n`);
    await releaseDeadRuns(client, log);
    log.info({ backup: name, root }, 'backup started');
    pool.start(); // while the cluster is snapshotted: ready when the first copy is
    log.debug({ backup: name, leaseMs: options.leaseMs, deadlineMs: options.deadlineMs }, 'asking the coordinator to freeze the cluster and snapshot every daemon');
    result = await client.backup(name, { owner: options.owner, leaseMs: options.leaseMs, deadlineMs: options.deadlineMs, frozenMsMax: options.frozenMsMax, lockToken: token });
    log.info(
      { backup: name, freezeMs: Number(result.freeze.ms.toFixed(1)), frozenTotalMs: Number(result.frozenTotalMs.toFixed(1)), attempts: result.attempts, servers: result.servers.length },
      'cluster snapshot taken; copying',
    );
    if (signal.aborted) throw new KvError('BACKUP_FAILED', 'interrupted');

    writeFileDurably(layout.coordinatorFile(partial), result.coordinatorState);
    const previous = layout.previousBackup(root);
    const previousDir = previous && layout.completeDir(root, previous);
    const local = localAddresses();
    const atCut = replicasAtCut(decodeState(result.coordinatorState, 'the coordinator state'), result.servers.map((s) => s.serverId));
    const chosen = new Set(serversToCopy(atCut, result.servers.map((s) => s.serverId), options.replicas));
    const toCopy = result.servers.filter((s) => chosen.has(s.serverId));
    const coverage = Object.fromEntries([...atCut].map(([p, ids]) => [p, ids.filter((id) => chosen.has(id))]));
    const totalBytes = toCopy.reduce((s, x) => s + x.bytes, 0);
    const totalFiles = toCopy.reduce((s, x) => s + x.files, 0);
    progress.start(totalBytes, totalFiles);
    const done = new Map<string, number>();
    let filesDone = 0;
    const report = () => progress.update([...done.values()].reduce((a, b) => a + b, 0), filesDone);

    const servers = await Promise.all(
      toCopy.map(async (server): Promise<ServerSummary> => {
        const dest = layout.serverDir(partial, server.serverId);
        const linkCandidate = previousDir && layout.serverDir(previousDir, server.serverId);
        const remote = !local.has(server.host);
        const source = remote ? remotePath(server.host, server.path) : server.path;
        const linkDest = linkCandidate && existsSync(linkCandidate) ? linkCandidate : undefined;
        log.debug({ serverId: server.serverId, source, dest, linkDest: linkDest ?? null, bytes: server.bytes, files: server.files }, 'copying server');
        const job = copy({
          source,
          remote,
          dest,
          linkDest,
          rsh: options.rsh,
          rsync,
          ...(options.ioTimeoutSeconds === undefined ? {} : { ioTimeoutSeconds: options.ioTimeoutSeconds }),
          onProgress: (bytes) => {
            done.set(server.serverId, bytes);
            report();
          },
        });
        copies.push(job);
        await job.done;
        const previousCopy = linkCandidate && existsSync(join(linkCandidate, 'manifest.json'))
          ? { dir: linkCandidate, manifest: readManifest(linkCandidate) }
          : undefined;
        log.debug({ serverId: server.serverId, dest }, 'copied; checking every file against the manifest');
        const checked = await checkCopy(dest, previousCopy, { pool, fsync: true });
        if (checked.manifest.serverId !== server.serverId || checked.manifest.clusterId !== result!.clusterId || checked.manifest.name !== name) {
          throw new KvError('BACKUP_FAILED', `the copy in ${dest} is not server ${server.serverId}'s snapshot ${name}`);
        }
        done.set(server.serverId, server.bytes);
        filesDone += server.files;
        report();
        // The check fsynced every file it hashed; the rest were linked to the previous backup's, durable already.
        fsyncPath(join(dest, manifestFileName));
        fsyncPath(levelDir(dest));
        fsyncPath(dest);
        const share = sharing(dest, linkCandidate);
        log.info({ serverId: server.serverId, files: checked.files, bytes: checked.bytes, ...share }, 'server copied and checked');
        return {
          serverId: server.serverId,
          host: server.host,
          snapshot: server.path,
          // What this backup holds on disk for the server (manifest included), so copied + linked = total.
          files: share.copiedFiles + share.linkedFiles,
          bytes: share.copiedBytes + share.linkedBytes,
          ...share,
          quiescedMs: server.quiescedMs,
          captureMs: server.captureMs,
        };
      }),
    );
    progress.stop();

    const finished = new Date();
    const summary: BackupSummary = {
      format: 'kv-backup',
      formatVersion: 1,
      name,
      clusterId: result.clusterId,
      configVersion: result.configVersion,
      previous: previous ?? null,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      totalMs: finished.getTime() - started.getTime(),
      attempts: result.attempts,
      freeze: result.freeze,
      frozenTotalMs: result.frozenTotalMs,
      replicas: options.replicas,
      coverage,
      skipped: result.servers.filter((s) => !chosen.has(s.serverId)).map((s) => s.serverId),
      servers,
      totals: {
        servers: servers.length,
        files: servers.reduce((s, x) => s + x.files, 0),
        bytes: servers.reduce((s, x) => s + x.bytes, 0),
        copiedBytes: servers.reduce((s, x) => s + x.copiedBytes, 0),
        alwaysCopiedBytes: servers.reduce((s, x) => s + x.alwaysCopiedBytes, 0),
        linkedBytes: servers.reduce((s, x) => s + x.linkedBytes, 0),
      },
    };
    if (lockLost) throw lockLost;
    rmSync(layout.ownerFile(partial));
    writeFileDurably(layout.summaryFile(partial), JSON.stringify(summary, null, 2) + '\n');
    fsyncPath(partial);
    renameSync(partial, complete);
    fsyncPath(root);
    writeFileDurably(layout.latestFile(root), `${name}\n`);
    log.debug({ backup: name, dir: complete }, 'backup complete; releasing the snapshots on the daemons');
    await releaseSnapshots(client, name, log);
    prune(root, options.keep, name, log);
    return summary;
  } catch (error) {
    progress.stop();
    copies.forEach((c) => c.cancel());
    rmSync(partial, { recursive: true, force: true });
    if (result) await releaseSnapshots(client, name, log);
    throw lockLost ?? error;
  } finally {
    await pool.close();
    signal.removeEventListener('abort', onAbort);
    clearInterval(renew);
    await client.backupUnlock(token).catch(() => {});
  }
}

async function releaseSnapshots(client: Client, name: string, log: Logger): Promise<void> {
  try {
    for (const r of await client.backupRelease(name)) {
      log.debug({ backup: name, serverId: r.serverId, released: r.released }, 'snapshot release');
      if (r.error) log.warn({ serverId: r.serverId, err: r.error }, 'snapshot not released; run kv backup-release when the daemon is back');
    }
  } catch (error) {
    log.warn({ backup: name, err: asKvError(error).message }, 'cannot release the snapshots; run kv backup-release');
  }
}

/**
 * Partial directories of earlier runs: removed, except one whose owner still runs on this host (a run whose lock
 * expired while it copies; it fails by itself, and its directory is its own to remove).
 */
function removeDeadPartials(root: string, log: Logger): void {
  for (const stale of readdirSync(root).filter((n) => n.endsWith('.partial'))) {
    const dir = join(root, stale);
    let owner: string | undefined;
    try {
      owner = readFileSync(layout.ownerFile(dir), 'utf8').trim();
    } catch {
      // written by a version that recorded no owner, or died before writing it
    }
    if (owner !== undefined && !provedGone(owner) && parseOwner(owner)?.host === hostname()) {
      log.warn({ dir, owner }, 'leaving a partial backup whose owner still runs');
      continue;
    }
    log.warn({ dir, owner: owner ?? null }, 'removing a partial backup left by an earlier run');
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Releases snapshots that earlier backup-manager runs left on the daemons when they died before releasing them.
 * Only those it can prove dead: we hold the backup lock, so theirs expired or was released, and their process
 * (on this host) is gone. Snapshots of `kv backup` are kept on purpose and are never touched.
 */
async function releaseDeadRuns(client: Client, log: Logger): Promise<void> {
  const left = new Map<string, string>();
  for (const daemon of await client.listSnapshots()) {
    for (const snapshot of daemon.snapshots) {
      if (snapshot.owner && parseOwner(snapshot.owner)?.tool === managerTool) left.set(snapshot.name, snapshot.owner);
    }
  }
  for (const [name, owner] of left) {
    if (!provedGone(owner)) {
      log.warn({ backup: name, owner }, 'a snapshot of another backup-manager run is on the daemons and its owner cannot be proved gone; kv backup-release it once it is');
      continue;
    }
    log.info({ backup: name, owner }, 'releasing snapshots left by a backup-manager run that died');
    await releaseSnapshots(client, name, log);
  }
}

/** Keeps the newest `keep` complete backups. Safe: backups share files only through hard links. */
function prune(root: string, keep: number | undefined, current: string, log: Logger): void {
  if (keep === undefined) return;
  const backups = layout.completeBackups(root);
  for (const old of backups.slice(0, Math.max(0, backups.length - keep))) {
    if (old === current) continue;
    rmSync(layout.completeDir(root, old), { recursive: true, force: true });
    log.info({ backup: old }, 'pruned');
  }
}

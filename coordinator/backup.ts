// A coordinated backup, driven by the coordinator so that no client can leave the cluster frozen. One attempt is
// a state machine with one handler per state:
//
//   prepare → freeze → quiesce → capture → check → save → thaw → seal → done
//
// (prepare links each daemon's current table files before anything is frozen: tables never change, so the
// capture inside the freeze only has to bring the links up to date and copy a few small files.)
//
// and a back-out from any state: thaw if frozen, release every snapshot taken. An attempt whose cut may not be
// consistent (the config changed while frozen, a capture came too close to the lease) is backed out and retried
// after a growing wait, until the deadline.
//
// Why the cut is consistent: each daemon, once it runs the freeze config, holds new client writes; every daemon
// reports quiesced once the writes it admitted before are committed and replicated down their chains; only then
// does any daemon capture, so no write moves while snapshots are taken and every replica of a partition is
// captured identical. A held write is acknowledged only after the thaw, which comes after every capture. So any write acknowledged before some daemon captured was committed on its own daemon before
// that daemon froze, and is in the backup. The one way a daemon releases writes early is its lease; the
// coordinator thaws only when every capture finished less than (lease − margin) after the freeze was sent, and
// a daemon's lease starts when it receives the freeze, later than that.
import { randomUUID } from 'node:crypto';
import { findServer, type ClusterConfig, type ServerInfo } from '../shared/config.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { parseAddress } from '../shared/address.js';
import { freezeLeaseMarginMs, snapshotPrepareMsMax, snapshotSealMsMax } from '../shared/limits.js';
import type { BackupResult, CaptureResult, MessageOf, RequestOf, RequestType, Results, SealResult } from '../shared/protocol.js';
import * as cluster from './cluster.js';
import { encodeState } from '../shared/state-file.js';

/** What a backup needs from the coordinator: its config, its one way to change it, and its daemon sessions. */
export interface BackupHost {
  config(): ClusterConfig;
  change(transition: (config: ClusterConfig) => ClusterConfig): Promise<ClusterConfig>;
  ask<T extends RequestType>(serverId: string, request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]>;
  log: Logger;
  /** Testing only: wait this long after freezing, as a stuck or slow coordinator would. */
  stallAfterFreezeMs?: number;
}

export type BackupState = 'prepare' | 'freeze' | 'quiesce' | 'capture' | 'check' | 'save' | 'thaw' | 'seal' | 'done';

/** An attempt that may succeed if tried again. */
export class Retry extends Error {}

const retryWaitMsMin = 100;
const retryWaitMsMax = 2_000;

interface Attempt {
  request: MessageOf<'backup'>;
  number: number;
  freezeId: string;
  members: ServerInfo[];
  frozen?: { config: ClusterConfig; startedAt: number; beganAt: Date };
  thawed?: { endedAt: Date; ms: number };
  quiesced: Map<string, number>;
  captures: Map<string, CaptureResult>;
  coordinatorState?: Uint8Array;
  seals: Map<string, SealResult>;
}

const marginMs = (leaseMs: number) => Math.min(freezeLeaseMarginMs, leaseMs / 5);

/** Runs one request per member in parallel, within what is left of the lease. */
async function everyMember(a: Attempt, host: BackupHost, ask: (server: ServerInfo, budgetMs: number) => Promise<void>): Promise<void> {
  const budget = a.request.leaseMs - marginMs(a.request.leaseMs) - (performance.now() - a.frozen!.startedAt);
  if (budget <= 0) throw new Retry('the freeze lease ran short');
  const results = await Promise.allSettled(a.members.map((s) => ask(s, budget)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    const error = asKvError(failed.reason);
    // A slow daemon or a compaction storm may pass; a refused or missing daemon will not.
    if (error.code === 'TIMEOUT' || error.message.includes('kept changing')) throw new Retry(error.message);
    throw error;
  }
}

/** The daemons to snapshot: every server in some partition's chain. Each must be up. */
/**
 * The daemons to snapshot: every available member of some partition's chain. Every partition needs at least
 * one; a replica that is down is simply not in this backup (after the quiesce all live replicas are identical).
 */
function membersOf(config: ClusterConfig): ServerInfo[] {
  const isAvailable = (id: string) => findServer(config, id)?.state === 'available';
  const lost = config.spaces.flatMap((s) =>
    s.partitions.flatMap((p, i) => (p.chain.some(isAvailable) ? [] : [`partition ${i} of "${s.name}" (on ${p.chain.join(', ')})`])),
  );
  if (lost.length > 0) {
    throw new KvError('UNAVAILABLE', `cannot back up: no replica is available for ${lost.slice(0, 3).join('; ')}${lost.length > 3 ? ` and ${lost.length - 3} more` : ''}`);
  }
  const ids = new Set(config.spaces.flatMap((s) => s.partitions.flatMap((p) => p.chain.filter(isAvailable))));
  return [...ids].map((id) => findServer(config, id)!);
}

export const handlers: Record<Exclude<BackupState, 'done'>, (a: Attempt, host: BackupHost) => Promise<BackupState>> = {
  async prepare(a, host) {
    a.members = membersOf(host.config());
    await Promise.all(a.members.map((s) => host.ask(s.id, { t: 'prepare', name: a.request.name }, snapshotPrepareMsMax)));
    return 'freeze';
  },

  async freeze(a, host) {
    const startedAt = performance.now();
    const beganAt = new Date();
    const config = await host.change((c) => cluster.freeze(c, { id: a.freezeId, name: a.request.name, leaseMs: a.request.leaseMs }));
    a.frozen = { config, startedAt, beganAt };
    if (host.stallAfterFreezeMs) await new Promise((resolve) => setTimeout(resolve, host.stallAfterFreezeMs));
    return 'quiesce';
  },

  async quiesce(a, host) {
    await everyMember(a, host, async (s, budget) => {
      a.quiesced.set(s.id, (await host.ask(s.id, { t: 'quiesce', freezeId: a.freezeId }, budget)).quiescedMs);
    });
    return 'capture';
  },

  async capture(a, host) {
    await everyMember(a, host, async (s, budget) => {
      a.captures.set(s.id, await host.ask(s.id, { t: 'capture', freezeId: a.freezeId, name: a.request.name }, budget));
    });
    return 'check';
  },

  async check(a, host) {
    if (host.config().version !== a.frozen!.config.version) {
      throw new Retry(`the config changed during the freeze (version ${a.frozen!.config.version} → ${host.config().version})`);
    }
    const elapsed = performance.now() - a.frozen!.startedAt;
    if (elapsed >= a.request.leaseMs - marginMs(a.request.leaseMs)) {
      throw new Retry(`the captures took ${Math.round(elapsed)} ms, too close to the ${a.request.leaseMs} ms lease`);
    }
    return 'save';
  },

  async save(a) {
    a.coordinatorState = encodeState(cluster.withoutFreeze(a.frozen!.config));
    return 'thaw';
  },

  async thaw(a, host) {
    await host.change((c) => cluster.thaw(c, a.freezeId));
    a.thawed = { endedAt: new Date(), ms: performance.now() - a.frozen!.startedAt };
    return 'seal';
  },

  async seal(a, host) {
    const version = a.frozen!.config.version;
    await Promise.all(
      a.members.map(async (s) => {
        a.seals.set(s.id, await host.ask(s.id, { t: 'seal', name: a.request.name, configVersion: version, owner: a.request.owner }, snapshotSealMsMax));
      }),
    );
    return 'done';
  },
};

/** Undoes what an attempt did: thaw if still frozen, release every snapshot it may have left. */
async function backOut(a: Attempt, host: BackupHost): Promise<void> {
  if (a.frozen && !a.thawed) {
    await host.change((c) => cluster.thaw(c, a.freezeId)).catch((error) =>
      host.log.error({ err: error, backup: a.request.name }, 'cannot thaw; daemons will thaw by their lease'),
    );
  }
  await Promise.allSettled(
    a.members.map((s) => host.ask(s.id, { t: 'release_snapshot', name: a.request.name, freezeId: a.freezeId }, 10_000)),
  );
}

async function runAttempt(a: Attempt, host: BackupHost): Promise<void> {
  let state: BackupState = 'prepare';
  try {
    while (state !== 'done') {
      const from: BackupState = state;
      state = await handlers[from](a, host);
      host.log.debug({ backup: a.request.name, attempt: a.number, from, to: state }, 'backup state');
    }
  } catch (error) {
    host.log.warn({ backup: a.request.name, attempt: a.number, state, err: (error as Error).message }, 'backup attempt backed out');
    await backOut(a, host);
    throw error;
  }
}

export async function runBackup(request: MessageOf<'backup'>, host: BackupHost): Promise<BackupResult> {
  const deadline = Date.now() + request.deadlineMs;
  const log = host.log.child({ backup: request.name });
  log.info({ owner: request.owner, leaseMs: request.leaseMs }, 'backup started');
  let wait = retryWaitMsMin;
  for (let number = 1; ; number++) {
    const attempt: Attempt = { request, number, freezeId: randomUUID(), members: [], quiesced: new Map(), captures: new Map(), seals: new Map() };
    try {
      await runAttempt(attempt, host);
      return result(attempt, log);
    } catch (error) {
      if (!(error instanceof Retry)) throw error;
      if (Date.now() + wait > deadline) {
        throw new KvError('BACKUP_FAILED', `backup ${request.name} gave up after ${number} attempt(s): ${error.message}`);
      }
      log.info({ attempt: number, why: error.message, waitMs: wait }, 'retrying the backup');
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, retryWaitMsMax);
    }
  }
}

function result(a: Attempt, log: Logger): BackupResult {
  const frozen = a.frozen!;
  const thawed = a.thawed!;
  const out: BackupResult = {
    name: a.request.name,
    clusterId: frozen.config.clusterId,
    configVersion: frozen.config.version,
    coordinatorState: a.coordinatorState!,
    attempts: a.number,
    freeze: { beganAt: frozen.beganAt.toISOString(), endedAt: thawed.endedAt.toISOString(), ms: thawed.ms },
    servers: a.members.map((s) => ({
      serverId: s.id,
      address: s.address,
      host: parseAddress(s.address).host,
      ...a.seals.get(s.id)!,
      quiescedMs: a.quiesced.get(s.id)!,
      captureMs: a.captures.get(s.id)!.captureMs,
    })),
  };
  log.info({ configVersion: out.configVersion, attempts: out.attempts, freezeMs: Math.round(out.freeze.ms), servers: out.servers.length }, 'backup done');
  return out;
}

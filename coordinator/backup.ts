// A coordinated backup, driven by the coordinator so that no client can leave the cluster frozen. One attempt is
// a state machine with one handler per state:
//
//   prepare → freeze → quiesce → capture → check → save → thaw → seal → done
//
// (prepare links each daemon's current table files before anything is frozen: tables never change, so the
// capture inside the freeze only has to bring the links up to date and copy a few small files. The thaw config is
// persisted with the freeze and only published in thaw, so nothing inside the freeze waits on the config store.)
//
// and a back-out from any state: thaw if frozen, release every snapshot taken. An attempt that fails (a daemon
// refused, vanished or was slow, a capture came too close to the lease) is backed out and retried after a growing
// wait, until the deadline.
//
// What a backup may cost the cluster is bounded: an attempt waits at most `backupQuiesceMsMax` for the daemons to
// quiesce, and the freezes of all its attempts add up to at most the frozen budget (`--frozen-ms-max`), after which
// the backup fails naming the daemons that did not quiesce. Between two attempts the cluster runs unfrozen for at
// least `backupUnfrozenPerFrozenMin` times the freeze before. (Before this bound, a daemon cut off from its successor
// froze every write of the cluster for a whole lease per attempt, up to 12 times in one backup.)
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
import {
  backupFrozenMsMaxDefault,
  backupQuiesceMsMax,
  backupRetryWaitMsMax,
  backupRetryWaitMsMin,
  backupThawReserveMs,
  backupUnfrozenPerFrozenMin,
  freezeLeaseMarginMs,
  snapshotPrepareMsMax,
  snapshotReleaseMsMax,
  snapshotSealMsMax,
} from '../shared/limits.js';
import type { BackupResult, CaptureResult, MessageOf, RequestOf, RequestType, Results, SealResult } from '../shared/protocol.js';
import * as cluster from './cluster.js';
import type { StagedChange } from './config-log.js';
import { encodeState } from '../shared/state-file.js';

/** What a backup needs from the coordinator: its config, its one way to change it, and its daemon sessions. */
export interface BackupHost {
  config(): ClusterConfig;
  /**
   * Persists the config after both transitions, publishes the first's and stages the second's, to be published when
   * told; no other change runs in between (config-log.ts, `changeAndStage`).
   */
  changeAndStage(first: (config: ClusterConfig) => ClusterConfig, then: (config: ClusterConfig) => ClusterConfig): Promise<{ changed: ClusterConfig; staged: StagedChange }>;
  ask<T extends RequestType>(serverId: string, request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]>;
  /** Called for every release a backing-out attempt could not deliver (the daemon was gone): owed to it when it is back. */
  owe(serverId: string, name: string, freezeId: string): void;
  log: Logger;
  /** Testing only: wait this long after freezing, as a stuck or slow coordinator would. */
  stallAfterFreezeMs?: number;
  /** Testing only: wait this long on entering this state (logged first), so a test can kill a process there. */
  stallAt?: { state: BackupState; ms: number };
  /** The time the backup's bounds and waits run on; absent: the system's. A test injects one it advances itself. */
  clock?: BackupClock;
}

export interface BackupClock {
  /** Monotonic milliseconds: every bound, every wait and the deadline are measured on it. */
  nowMs(): number;
  /** Wall time, for the freeze's beganAt and endedAt. */
  date(): Date;
  sleep(ms: number): Promise<void>;
}

export const systemClock: BackupClock = {
  nowMs: () => performance.now(),
  date: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export const backupStates = ['prepare', 'freeze', 'quiesce', 'capture', 'check', 'save', 'thaw', 'seal', 'done'] as const;
export type BackupState = (typeof backupStates)[number];

/** An attempt that may succeed if tried again. */
export class Retry extends Error {}

/** An attempt some daemons did not quiesce for in time. */
class QuiesceTimeout extends Retry {
  constructor(readonly servers: ServerInfo[], waitedMs: number) {
    super(`${describe(servers)} did not quiesce within ${Math.round(waitedMs)} ms`);
  }
}

const describe = (servers: ServerInfo[]) =>
  `${servers.length === 1 ? 'server' : 'servers'} ${servers.map((s) => `${s.id} (${s.address})`).join(', ')}`;

/** The frozen budget of one backup, shared by its attempts. */
interface FrozenBudget {
  limitMs: number;
  /** Frozen by attempts that have ended. */
  spentMs: number;
}

interface Attempt {
  request: MessageOf<'backup'>;
  number: number;
  budget: FrozenBudget;
  clock: BackupClock;
  freezeId: string;
  members: ServerInfo[];
  frozen?: { config: ClusterConfig; startedAt: number; beganAt: Date };
  /** The thaw, persisted with the freeze: publishing it is all that ends the freeze. */
  thaw?: StagedChange;
  thawed?: { endedAt: Date; ms: number };
  quiesced: Map<string, number>;
  captures: Map<string, CaptureResult>;
  coordinatorState?: Uint8Array;
  seals: Map<string, SealResult>;
}

const marginMs = (leaseMs: number) => Math.min(freezeLeaseMarginMs, leaseMs / 5);

/**
 * How long this attempt is frozen so far; counted from the freeze's publication (no daemon holds a write before it
 * gets that config, so every daemon's lease starts later than this).
 */
const frozenSoFar = (a: Attempt) => a.clock.nowMs() - a.frozen!.startedAt;

/** How long the cluster was frozen by an attempt that has ended: to its thaw (the back-out always thaws; the lease, counted should one ever not). */
const frozenMsOf = (a: Attempt) => (a.frozen ? (a.thawed?.ms ?? a.request.leaseMs) : 0);

/** What is left of the lease and of the frozen budget for waiting on daemons, the thaw's share kept back. */
function waitLeft(a: Attempt): { ms: number; why: string } {
  const elapsed = frozenSoFar(a);
  const lease = a.request.leaseMs - marginMs(a.request.leaseMs) - elapsed;
  const budget = a.budget.limitMs - a.budget.spentMs - elapsed - backupThawReserveMs;
  return lease <= budget ? { ms: lease, why: 'the freeze lease ran short' } : { ms: budget, why: 'the frozen budget ran out' };
}

/**
 * Runs one request per member in parallel, each within `waitMs`. A daemon that times out may pass on another
 * attempt (slow, or a compaction storm); one that refuses or is missing will not.
 */
async function everyMember(a: Attempt, waitMs: number, ask: (server: ServerInfo, waitMs: number) => Promise<void>): Promise<void> {
  const failures = await failedMembers(a, (s) => ask(s, waitMs));
  if (failures.length === 0) return;
  const refused = failures.find((f) => f.error.code !== 'TIMEOUT' && !f.error.message.includes('kept changing'));
  if (refused) throw refused.error;
  throw new Retry(failures[0]!.error.message);
}

/** Asks every member at once; the members whose request failed, and how. */
async function failedMembers(a: Attempt, ask: (server: ServerInfo) => Promise<unknown>): Promise<Array<{ server: ServerInfo; error: KvError }>> {
  const results = await Promise.allSettled(a.members.map(ask));
  return results.flatMap((r, i) => (r.status === 'rejected' ? [{ server: a.members[i]!, error: asKvError(r.reason) }] : []));
}

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
    const { name, owner } = a.request;
    const failures = await failedMembers(a, (s) => host.ask(s.id, { t: 'prepare', name, owner }, snapshotPrepareMsMax));
    if (failures.length === 0) return 'freeze';
    // A member whose session is gone while the config still lists it as available (the coordinator has ended the
    // session and not yet saved it as down, or it is reconnecting): the next attempt reads the config again, by
    // which time it is either back or out of the backup. Nothing is frozen yet, so trying again costs no writes.
    const refused = failures.find((f) => f.error.code !== 'UNAVAILABLE');
    if (refused) throw refused.error;
    throw new Retry(`${describe([failures[0]!.server])} could not be asked to prepare: ${failures[0]!.error.message}`);
  },

  async freeze(a, host) {
    // The thaw is saved with the freeze, before it: the freeze holds writes for two round trips to the daemons and
    // no wait on the config store (whose fsync took 5 to 20 ms at each end of the freeze under a 1 GB cluster's
    // compactions). Until the thaw is published no other config change runs: the config daemons see cannot change
    // under the quiesce and the captures, and what waits is applied right after the thaw.
    const { changed: config, staged } = await host.changeAndStage(
      (c) => cluster.freeze(c, { id: a.freezeId, name: a.request.name, leaseMs: a.request.leaseMs }),
      (c) => cluster.thaw(c, a.freezeId),
    );
    // Published in the same turn as this resolved, and sent at the end of it: before any daemon can have it.
    a.frozen = { config, startedAt: a.clock.nowMs(), beganAt: a.clock.date() };
    a.thaw = staged;
    if (host.stallAfterFreezeMs) await a.clock.sleep(host.stallAfterFreezeMs);
    return 'quiesce';
  },

  async quiesce(a, host) {
    const left = waitLeft(a);
    if (left.ms <= 0) throw new Retry(left.why);
    const waitMs = Math.min(backupQuiesceMsMax, left.ms);
    const late: ServerInfo[] = [];
    try {
      await everyMember(a, waitMs, async (s) => {
        try {
          a.quiesced.set(s.id, (await host.ask(s.id, { t: 'quiesce', freezeId: a.freezeId }, waitMs)).quiescedMs);
        } catch (error) {
          if (asKvError(error).code === 'TIMEOUT') late.push(s);
          throw error;
        }
      });
    } catch (error) {
      // Waiting longer holds every write of the cluster for what may be a fault: thaw now, try again later.
      if (error instanceof Retry && late.length > 0) throw new QuiesceTimeout(late, waitMs);
      throw error;
    }
    return 'capture';
  },

  async capture(a, host) {
    const left = waitLeft(a);
    if (left.ms <= 0) throw new Retry(left.why);
    await everyMember(a, left.ms, async (s, waitMs) => {
      a.captures.set(s.id, await host.ask(s.id, { t: 'capture', freezeId: a.freezeId, name: a.request.name }, waitMs));
    });
    return 'check';
  },

  async check(a) {
    // (The config cannot have changed since the freeze: every change waits for the staged thaw.)
    const elapsed = frozenSoFar(a);
    if (elapsed >= a.request.leaseMs - marginMs(a.request.leaseMs)) {
      throw new Retry(`the captures took ${Math.round(elapsed)} ms, too close to the ${a.request.leaseMs} ms lease`);
    }
    return 'save';
  },

  async save(a) {
    a.coordinatorState = encodeState(cluster.withoutFreeze(a.frozen!.config));
    return 'thaw';
  },

  async thaw(a) {
    a.thaw!.publish();
    a.thawed = { endedAt: a.clock.date(), ms: frozenSoFar(a) };
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

/**
 * Undoes what an attempt did: thaw if still frozen, release the snapshot on every member it sent a prepare to,
 * answered or not (a prepare may still be on its way; releasing a name a daemon does not have is harmless). A
 * release that cannot be delivered is owed to the daemon when it registers again.
 */
async function backOut(a: Attempt, host: BackupHost): Promise<void> {
  if (a.frozen && !a.thawed) {
    // Saved with the freeze: publishing cannot fail (a coordinator deposed meanwhile publishes nothing, and its
    // successor's first config has no freeze, being this one or later).
    a.thaw!.publish();
    a.thawed = { endedAt: a.clock.date(), ms: frozenSoFar(a) };
  }
  const { name } = a.request;
  await Promise.all(
    a.members.map((s) =>
      host.ask(s.id, { t: 'release_snapshot', name, freezeId: a.freezeId }, snapshotReleaseMsMax).catch((error) => {
        host.log.warn({ backup: name, serverId: s.id, err: asKvError(error).message }, 'cannot release an attempt\'s snapshot now; owed to the daemon');
        host.owe(s.id, name, a.freezeId);
      }),
    ),
  );
}

async function runAttempt(a: Attempt, host: BackupHost): Promise<void> {
  let state: BackupState = 'prepare';
  try {
    while (state !== 'done') {
      const from: BackupState = state;
      if (host.stallAt?.state === from) {
        host.log.info({ backup: a.request.name, attempt: a.number, state: from, ms: host.stallAt.ms }, 'backup stalled (testing fault)');
        await a.clock.sleep(host.stallAt.ms);
      }
      state = await handlers[from](a, host);
      host.log.debug({ backup: a.request.name, attempt: a.number, from, to: state }, 'backup state');
    }
  } catch (error) {
    await backOut(a, host);
    const frozenMs = Math.round(frozenMsOf(a));
    host.log.warn({ backup: a.request.name, attempt: a.number, state, frozenMs, err: (error as Error).message }, 'backup attempt backed out');
    throw error;
  }
}

export async function runBackup(request: MessageOf<'backup'>, host: BackupHost): Promise<BackupResult> {
  const clock = host.clock ?? systemClock;
  const deadline = clock.nowMs() + request.deadlineMs;
  const log = host.log.child({ backup: request.name });
  const budget: FrozenBudget = { limitMs: request.frozenMsMax ?? backupFrozenMsMaxDefault, spentMs: 0 };
  log.info({ owner: request.owner, leaseMs: request.leaseMs, frozenMsMax: budget.limitMs }, 'backup started');
  let backoff = backupRetryWaitMsMin;
  /** Every server that did not quiesce in time, over all attempts, for the final word. */
  const late = new Map<string, ServerInfo>();
  for (let number = 1; ; number++) {
    const attempt: Attempt = { request, number, budget, clock, freezeId: randomUUID(), members: [], quiesced: new Map(), captures: new Map(), seals: new Map() };
    try {
      await runAttempt(attempt, host);
      return result(attempt, log);
    } catch (error) {
      const frozenMs = frozenMsOf(attempt);
      budget.spentMs += frozenMs;
      if (!(error instanceof Retry)) throw error;
      if (error instanceof QuiesceTimeout) for (const s of error.servers) late.set(s.id, s);
      const gaveUp = (why: string) => {
        // The last attempt's error names its own late daemons; the final word adds those late only in earlier ones.
        const named = new Set(error instanceof QuiesceTimeout ? error.servers.map((s) => s.id) : []);
        const earlier = [...late.values()].filter((s) => !named.has(s.id));
        const lateWord = earlier.length > 0 ? `; ${describe(earlier)} did not quiesce in time${named.size > 0 ? ' in an earlier attempt' : ''}` : '';
        log.warn({ attempts: number, frozenTotalMs: Math.round(budget.spentMs), frozenMsMax: budget.limitMs, notQuiesced: [...late.keys()] }, 'backup failed');
        return new KvError('BACKUP_FAILED', `backup ${request.name} gave up after ${number} attempt(s), ${why}: ${error.message}${lateWord}`);
      };
      const frozenWord = `the cluster frozen ${Math.round(budget.spentMs)} ms in all`;
      if (budget.limitMs - budget.spentMs <= 2 * backupThawReserveMs) throw gaveUp(`${frozenWord}, the most --frozen-ms-max allows (${budget.limitMs} ms)`);
      const wait = Math.max(backoff, backupUnfrozenPerFrozenMin * frozenMs);
      if (clock.nowMs() + wait > deadline) throw gaveUp(`${frozenWord}, at the --deadline-ms`);
      log.info({ attempt: number, why: error.message, waitMs: Math.round(wait), frozenMs: Math.round(frozenMs), frozenTotalMs: Math.round(budget.spentMs) }, 'retrying the backup');
      await clock.sleep(wait);
      backoff = Math.min(backoff * 2, backupRetryWaitMsMax);
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
    frozenTotalMs: a.budget.spentMs + thawed.ms,
    servers: a.members.map((s) => ({
      serverId: s.id,
      address: s.address,
      host: parseAddress(s.address).host,
      ...a.seals.get(s.id)!,
      quiescedMs: a.quiesced.get(s.id)!,
      captureMs: a.captures.get(s.id)!.captureMs,
    })),
  };
  log.info(
    { configVersion: out.configVersion, attempts: out.attempts, freezeMs: Math.round(out.freeze.ms), frozenTotalMs: Math.round(out.frozenTotalMs), servers: out.servers.length },
    'backup done',
  );
  return out;
}

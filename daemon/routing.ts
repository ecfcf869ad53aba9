// Whether this daemon may serve a request, judged by its current config and its role in the partition
// (chain-role.ts). The answers tell a client what to do: STALE_CONFIG (refresh, or wait for this daemon to catch
// up), WRONG_SERVER (refresh), NO_SUCH_SPACE, READ_ONLY. Pure, so every case is a unit test; the daemon's
// replicas (replicas.ts) call these with the role each replica computed once for the config.
import type { ClusterConfig, SpaceInfo } from '../shared/config.js';
import { KvError, badRequest } from '../shared/errors.js';
import { keyBytesMax } from '../shared/limits.js';
import { partitionOf } from '../shared/partition.js';
import { inPartition } from '../shared/key-layout.js';
import type { MessageOf } from '../shared/protocol.js';
import type { Origin } from './write-queue.js';
import { servesReads, takesWrites, type Role } from './chain-role.js';

export interface Routed {
  space: SpaceInfo;
  partition: number;
}

export interface Addressed {
  /** The config version the client routed by. */
  v: number;
  space: string;
  key?: string;
  partition?: number;
}

/**
 * The partition a client's request addresses, if the config it was routed by is still good for it. `spaceNamed`
 * finds a space of `config` by name (the replicas index them once per config).
 */
export function locate(
  config: ClusterConfig | undefined,
  serverId: string | undefined,
  request: Addressed,
  spaceNamed: (name: string) => SpaceInfo | undefined,
): Routed {
  if (config === undefined || serverId === undefined) {
    throw new KvError('STALE_CONFIG', 'this daemon has not received a config yet', 0);
  }
  if (request.v > config.version) {
    throw new KvError('STALE_CONFIG', `this daemon runs config ${config.version}, older than the client's`, config.version);
  }
  const space = spaceNamed(request.space);
  if (!space) throw new KvError('NO_SUCH_SPACE', `space "${request.space}" does not exist`, config.version);
  let partition: number;
  if (request.key !== undefined) {
    if (Buffer.byteLength(request.key) > keyBytesMax) throw badRequest(`keys are at most ${keyBytesMax} bytes`);
    partition = partitionOf(request.key, space.partitions.length);
  } else {
    partition = request.partition ?? -1;
    if (partition < 0 || partition >= space.partitions.length) {
      throw badRequest(`space "${space.name}" has no partition ${partition}`);
    }
  }
  const info = space.partitions[partition]!;
  if (request.v < info.since) {
    throw new KvError('STALE_CONFIG', `partition ${partition} of "${space.name}" moved in config ${info.since}`, config.version);
  }
  return { space, partition };
}

/** Whether a daemon in `role` serves a located request: writes enter at the head of the chain, the tail serves reads. */
export function checkServes(config: ClusterConfig, role: Role, routed: Routed, write: boolean): void {
  if (!(write ? takesWrites(role) : servesReads(role))) {
    throw new KvError('WRONG_SERVER', `this daemon does not serve partition ${routed.partition} of "${routed.space.name}"`, config.version);
  }
  if (write && config.readOnly) throw new KvError('READ_ONLY', 'the cluster is read-only', config.version);
}

/** What another daemon forwarded (a batch, a transfer page) by a config this daemon has not seen waits for it. */
export function checkForwarded(config: ClusterConfig | undefined, serverId: string | undefined, v: number): asserts config is ClusterConfig {
  if (config === undefined || serverId === undefined || v > config.version) {
    throw new KvError('STALE_CONFIG', 'this daemon has not received that config yet', config?.version ?? 0);
  }
}

/**
 * Whether this daemon takes a replicated batch: it must be a member of the partition's chain other than its
 * head (the head takes writes from clients), the sender must have forwarded it by a config no older than the
 * partition's replica set (`since`: a batch from a former member, or one its sender gave up on when the chain
 * changed, could otherwise land after newer writes to the same keys), and every key must lie in the partition.
 * Returns the role in which this daemon takes it: a chain member, or the joining member after the tail.
 */
export function checkReplicated(
  config: ClusterConfig,
  role: Role,
  since: number,
  request: { v: number; spaceId: number; partition: number; changes: ReadonlyArray<readonly [Uint8Array, unknown]> },
): Exclude<Origin, 'client'> {
  if (role.kind === 'none' || takesWrites(role)) {
    throw new KvError('WRONG_SERVER', `this daemon does not replicate partition ${request.partition} of space ${request.spaceId}`, config.version);
  }
  if (request.v < since) {
    throw new KvError('STALE_CONFIG', `partition ${request.partition} of space ${request.spaceId} changed its replica set in config ${since}`, config.version);
  }
  for (const [key] of request.changes) {
    if (!inPartition(key, request.spaceId, request.partition)) throw badRequest('a replicated key lies outside its partition');
  }
  return role.kind === 'joining' ? 'joining' : 'chain';
}

/** Whether this daemon takes a transfer page: it is joining the partition, from the tail that sent it, by the current joining. */
export function checkTransferred(config: ClusterConfig, role: Role, since: number, message: MessageOf<'transfer'>): void {
  if (role.kind !== 'joining' || role.tail !== message.source) {
    throw new KvError('WRONG_SERVER', `this daemon is not receiving partition ${message.partition} from ${message.source}`, config.version);
  }
  if (message.v < since) {
    // A page of a transfer begun for an earlier joining of this daemon: its data may be older than what is here.
    throw new KvError('STALE_CONFIG', `partition ${message.partition}'s replica set changed in config ${since}`, config.version);
  }
  for (const [key] of message.entries) {
    if (!inPartition(key, message.spaceId, message.partition)) throw new KvError('BAD_REQUEST', 'a transferred key lies outside its partition');
  }
}

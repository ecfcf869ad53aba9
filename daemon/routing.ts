// Whether this daemon may serve a request, judged by its current config. The answers tell a client what to do:
// STALE_CONFIG (refresh, or wait for this daemon to catch up), WRONG_SERVER (refresh), NO_SUCH_SPACE,
// READ_ONLY. Pure, so every case is a unit test.
import { extendedChain, findSpace, type ClusterConfig, type SpaceInfo } from '../shared/config.js';
import { KvError, badRequest } from '../shared/errors.js';
import { keyBytesMax } from '../shared/limits.js';
import { partitionOf } from '../shared/partition.js';
import { inPartition } from '../shared/key-layout.js';
import type { Origin } from './write-queue.js';

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
 * Whether this daemon takes a replicated batch: it must be a member of the partition's chain other than its
 * head (the head takes writes from clients), the sender must have forwarded it by a config no older than the
 * partition's replica set (a batch from a former member, or one its sender gave up on when the chain changed,
 * could otherwise land after newer writes to the same keys), and every key must lie in the partition. Returns
 * the role in which this daemon takes it: a chain member, or the joining member after the tail.
 */
export function routeReplica(
  config: ClusterConfig | undefined,
  serverId: string | undefined,
  request: { v: number; spaceId: number; partition: number; changes: Array<[Uint8Array, unknown]> },
): Exclude<Origin, 'client'> {
  if (config === undefined || serverId === undefined || request.v > config.version) {
    throw new KvError('STALE_CONFIG', 'this daemon has not received that config yet', config?.version ?? 0);
  }
  const info = config.spaces.find((s) => s.id === request.spaceId)?.partitions[request.partition];
  if (!info || extendedChain(info).indexOf(serverId) < 1) {
    throw new KvError('WRONG_SERVER', `this daemon does not replicate partition ${request.partition} of space ${request.spaceId}`, config.version);
  }
  if (request.v < info.since) {
    throw new KvError('STALE_CONFIG', `partition ${request.partition} of space ${request.spaceId} changed its replica set in config ${info.since}`, config.version);
  }
  for (const [key] of request.changes) {
    if (!inPartition(key, request.spaceId, request.partition)) throw badRequest('a replicated key lies outside its partition');
  }
  return info.joining?.server === serverId ? 'joining' : 'chain';
}

export function route(
  config: ClusterConfig | undefined,
  serverId: string | undefined,
  request: Addressed,
  write: boolean,
): Routed {
  if (config === undefined || serverId === undefined) {
    throw new KvError('STALE_CONFIG', 'this daemon has not received a config yet', 0);
  }
  if (request.v > config.version) {
    throw new KvError('STALE_CONFIG', `this daemon runs config ${config.version}, older than the client's`, config.version);
  }
  const space = findSpace(config, request.space);
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
  // Writes enter at the head of the chain, reads are served by the tail.
  const servedBy = write ? info.chain[0] : info.chain[info.chain.length - 1];
  if (servedBy !== serverId) {
    throw new KvError('WRONG_SERVER', `this daemon does not serve partition ${partition} of "${space.name}"`, config.version);
  }
  if (write && config.readOnly) throw new KvError('READ_ONLY', 'the cluster is read-only', config.version);
  return { space, partition };
}

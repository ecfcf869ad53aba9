// The cluster configuration: what the coordinator owns and pushes to every daemon and client. Every change makes
// a new config with a higher version; nobody mutates one in place.
import { Type, type Static } from '@sinclair/typebox';
import { valueBytesMaxDefault } from './limits.js';

export const ServerState = Type.Union([
  Type.Literal('available'),
  Type.Literal('not_available'),
  Type.Literal('shutdown'),
]);
export type ServerState = Static<typeof ServerState>;

export const ServerInfo = Type.Object({
  /** 64-bit id, as a decimal string (HyperDex prints them this way too). */
  id: Type.String(),
  /** host:port the daemon serves clients on. */
  address: Type.String(),
  state: ServerState,
});
export type ServerInfo = Static<typeof ServerInfo>;

export const PartitionInfo = Type.Object({
  /** The daemons holding this partition, head first. Empty while no daemon could take it. */
  chain: Type.Array(Type.String()),
  /**
   * The config version at which `chain` or `joining` last changed. Whatever was routed or forwarded by an older
   * config (a client's request, a predecessor's replicated batch, a transfer page) is refused with STALE_CONFIG:
   * a sender that has not seen the partition's current replica set cannot put an old value behind a newer one.
   */
  since: Type.Integer({ minimum: 0 }),
  /**
   * A daemon receiving this partition by state transfer from the tail (and every write after the tail); it
   * joins the chain as its new tail when caught up, and then `replaces` (if set) leaves it.
   */
  joining: Type.Optional(Type.Object({ server: Type.String(), replaces: Type.Optional(Type.String()) })),
  /**
   * A member that a move replaced as the tail. It stays in the chain, just before the new tail, so writes still
   * pass it until it has acknowledged a config in which it is not the tail (a live daemon that has not heard yet
   * must not answer reads by its old config while writes go by it); then it leaves.
   */
  leaving: Type.Optional(Type.String()),
});
export type PartitionInfo = Static<typeof PartitionInfo>;

export const SpaceInfo = Type.Object({
  /** Never reused, so data of a removed space can never resurface under a new space of the same name. */
  id: Type.Integer({ minimum: 1 }),
  name: Type.String(),
  tolerate: Type.Integer({ minimum: 0 }),
  partitions: Type.Array(PartitionInfo),
});
export type SpaceInfo = Static<typeof SpaceInfo>;

/**
 * Set while a backup holds writes. Daemons that see it hold new writes (reads go on) until a config without it
 * arrives, or until `leaseMs` after they froze, whichever comes first: a lost coordinator cannot freeze the
 * cluster for longer than the lease.
 */
export const Freeze = Type.Object({
  id: Type.String(),
  /** The backup this freeze is for: daemons capture their snapshot under this name. */
  name: Type.String(),
  leaseMs: Type.Integer({ minimum: 1 }),
});
export type Freeze = Static<typeof Freeze>;

export const ClusterConfig = Type.Object({
  clusterId: Type.String(),
  /** New at creation and at every restore: tells a restored copy from its original (same cluster and server ids). */
  incarnation: Type.String(),
  version: Type.Integer({ minimum: 1 }),
  /**
   * The epoch of the coordinator leadership that made this config (coordinator/config-store.ts); absent: 0 (a
   * state saved before epochs). Never lower than the previous config's, and a new leader's first config has a
   * higher version than any before it, so (epoch, version) only grows: daemons and clients refuse a push that is
   * older in either (`supersedes`), which is how a deposed leader's pushes are ignored.
   */
  epoch: Type.Optional(Type.Integer({ minimum: 0 })),
  readOnly: Type.Boolean(),
  servers: Type.Array(ServerInfo),
  spaces: Type.Array(SpaceInfo),
  nextSpaceId: Type.Integer({ minimum: 1 }),
  freeze: Type.Optional(Freeze),
  /**
   * The largest stored value (an encoded attribute map), in bytes; absent: `valueBytesMaxDefault`. In the config so
   * that every member of a chain holds writes to one limit: the head checks it, and a successor never refuses what
   * its predecessor committed.
   */
  valueBytesMax: Type.Optional(Type.Integer({ minimum: 1 })),
  /**
   * The backup cut a restored cluster started from: the incarnation it was taken of and the config version of its
   * freeze (what each server's copy names in its manifest.json). Only those copies, and daemons that have since
   * joined this incarnation, may register (coordinator/cluster.ts, `checkDataOf`).
   */
  restoredFrom: Type.Optional(Type.Object({ incarnation: Type.String(), version: Type.Integer({ minimum: 1 }) })),
});
export type ClusterConfig = Static<typeof ClusterConfig>;

export const findSpace = (config: ClusterConfig, name: string): SpaceInfo | undefined =>
  config.spaces.find((space) => space.name === name);

/** The chain as writes flow: its members, then the daemon catching up, which receives every write too. */
export const extendedChain = (p: PartitionInfo): string[] => (p.joining ? [...p.chain, p.joining.server] : p.chain);

export const valueBytesMaxOf = (config: ClusterConfig | undefined): number => config?.valueBytesMax ?? valueBytesMaxDefault;

export const findServer = (config: ClusterConfig, id: string): ServerInfo | undefined =>
  config.servers.find((server) => server.id === id);

export const epochOf = (config: ClusterConfig): number => config.epoch ?? 0;

/** Whether `next` may replace `current`: a newer version, from the same or a later leadership. */
export const supersedes = (next: ClusterConfig, current: ClusterConfig | undefined): boolean =>
  current === undefined || (next.version > current.version && epochOf(next) >= epochOf(current));

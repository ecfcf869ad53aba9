// The coordinator's state transitions: pure functions from one cluster config to the next. Each one either
// throws a KvError (and nothing changes) or returns a config whose version is one higher.
import { extendedChain, findServer, findSpace, valueBytesMaxOf, type ClusterConfig, type Freeze, type PartitionInfo, type ServerInfo, type ServerState } from '../shared/config.js';
import { KvError, badRequest } from '../shared/errors.js';
import { newId64 } from '../shared/ids.js';
import { frameBytesMax, partitionsMax } from '../shared/limits.js';
import { dataFormatVersions } from '../shared/data-format.js';
import { checkSpaceName } from '../shared/names.js';

export const newCluster = (clusterId = newId64()): ClusterConfig => ({
  clusterId,
  incarnation: newId64(),
  version: 1,
  readOnly: false,
  servers: [],
  spaces: [],
  nextSpaceId: 1,
});

const bump = (config: ClusterConfig, changes: Partial<ClusterConfig>): ClusterConfig => ({
  ...config,
  ...changes,
  version: config.version + 1,
});

export interface Registration {
  address: string;
  serverId: string | null;
  clusterId: string | null;
  /** A daemon process registering for the first time (see `restartedServer`). */
  fresh?: boolean;
  /** The incarnation the data dir last registered with; null or absent: stamped before incarnations were. */
  incarnation?: string | null;
  /** The backup cut the data dir is a copy of; null or absent: a daemon's own data dir. */
  copyOf?: { name: string; configVersion: number } | null;
  /** The daemon data format it stores; absent: 1. */
  dataFormat?: number;
}

/**
 * Refuses a daemon whose data this cluster must not take in: another cluster's, an unknown server's, or another
 * incarnation's (below). A restored cluster shares its cluster and server
 * ids with its original, so ids alone would let a copy of the original's data dir (an easy slip with two clusters
 * on one host) register, and its newer data spread by state transfer. The data a daemon may bring is either this
 * incarnation's own (stamped with it at registration), or the cut this incarnation was restored from: a backup's
 * copy, named by the config version of its freeze in its manifest.json, from the incarnation the backup was taken
 * of. A backup's copy is refused everywhere else, even by its live original (it would roll back the partitions
 * only it holds). A data dir from before incarnations were stamped is taken in as it was, except by a cluster
 * restored since, which takes in only its backup's copies.
 */
export function checkDataOf(config: ClusterConfig, reg: Registration): void {
  const mismatch = (why: string) => new KvError('CLUSTER_MISMATCH', `server ${reg.serverId}: ${why}`);
  if (reg.clusterId !== null && reg.clusterId !== config.clusterId) {
    throw new KvError(
      'CLUSTER_MISMATCH',
      `this daemon's data belongs to cluster ${reg.clusterId}, but the coordinator runs cluster ${config.clusterId}`,
    );
  }
  // Replication and state transfer copy stored bytes from daemon to daemon: one cluster, one format.
  const dataFormat = reg.dataFormat ?? 1;
  if (dataFormat !== dataFormatVersions.daemon) {
    throw new KvError(
      'DATA_DIR_INVALID',
      `the daemon at ${reg.address} stores data format ${dataFormat}, but this cluster's daemons store format ${dataFormatVersions.daemon}: ` +
        'stored values move between daemons as they are, so every daemon of a cluster runs a kv of the same data format',
    );
  }
  if (reg.serverId === null) return;
  if (reg.clusterId === null) throw badRequest('a daemon that has a server id must also name its cluster id');
  if (!findServer(config, reg.serverId)) {
    throw new KvError('UNKNOWN_SERVER', `server ${reg.serverId} is not part of cluster ${config.clusterId}`);
  }
  const incarnation = reg.incarnation ?? null;
  const from = config.restoredFrom;
  if (incarnation === null && !from) return;
  const runs = from
    ? `the coordinator runs incarnation ${config.incarnation}, restored from the backup cut at version ${from.version} of incarnation ${from.incarnation}`
    : `the coordinator runs incarnation ${config.incarnation}, which was not restored from a backup`;
  if (reg.copyOf) {
    const ofThisCut = from !== undefined && reg.copyOf.configVersion === from.version;
    const known = incarnation === null || incarnation === from?.incarnation || incarnation === config.incarnation;
    if (ofThisCut && known) return;
    const taken = incarnation === null ? '' : ` of incarnation ${incarnation}`;
    throw mismatch(
      `the data dir is a copy of backup ${reg.copyOf.name} (the cut at version ${reg.copyOf.configVersion}${taken}), but ${runs}; ` +
        "a backup's copy joins only a coordinator started with --restore from that backup's coordinator.bin",
    );
  }
  if (incarnation === config.incarnation) return;
  if (incarnation === null) {
    throw mismatch(`the data dir is not a copy of the backup this cluster was restored from, and ${runs}; only that backup's copies may join`);
  }
  throw mismatch(
    `the data dir holds the data of incarnation ${incarnation} of cluster ${config.clusterId}, but ${runs}; ` +
      'is this daemon pointed at the other cluster (a restored one, or its original)?',
  );
}

/** A daemon (re)joins. A new daemon gets a fresh id; a known one keeps its id and may come from a new address. */
export function registerServer(config: ClusterConfig, reg: Registration): { config: ClusterConfig; serverId: string } {
  checkDataOf(config, reg);
  if (reg.serverId === null) {
    const serverId = newId64();
    const server: ServerInfo = { id: serverId, address: reg.address, state: 'available' };
    return { config: bump(config, { servers: [...config.servers, server] }), serverId };
  }
  const serverId = reg.serverId;
  const servers = config.servers.map((s) =>
    s.id === serverId ? { ...s, address: reg.address, state: 'available' as const } : s,
  );
  const placed = reg.fresh ? restartedServer(config, serverId) : config;
  return { config: bump(placed, { servers }), serverId };
}

/**
 * A known daemon that starts anew may have kept its place in chains (it came back before its death was noticed:
 * within the heartbeat timeout, or while a restarted coordinator waited). Whatever its previous process had
 * committed but not yet forwarded down a chain is lost, so its copy may hold a write the rest of the chain never
 * got: it leaves every chain that has another available member, and rejoins by state transfer. Its previous
 * process holds no lease (this one holds the data dir's lock).
 */
function restartedServer(config: ClusterConfig, serverId: string): ClusterConfig {
  const available = new Set(config.servers.filter((s) => s.state === 'available' && s.id !== serverId).map((s) => s.id));
  const version = config.version + 1;
  const spaces = config.spaces.map((space) => ({
    ...space,
    partitions: space.partitions.map((p) =>
      extendedChain(p).includes(serverId) && p.chain.some((id) => available.has(id)) ? withoutServer(p, serverId, version) : p,
    ),
  }));
  return { ...config, spaces };
}

/** A server changes state. What that means for chains is placement's business (placement.ts). */
export function setServerState(config: ClusterConfig, serverId: string, state: ServerState): ClusterConfig {
  const server = findServer(config, serverId);
  if (!server || server.state === state) return config;
  return bump(withServerState(config, serverId, state), {});
}

/** The same config with one server's state changed, as part of a transition that bumps the version itself. */
export const withServerState = (config: ClusterConfig, serverId: string, state: ServerState): ClusterConfig => ({
  ...config,
  servers: config.servers.map((s) => (s.id === serverId ? { ...s, state } : s)),
});

export function addSpace(config: ClusterConfig, name: string, partitions: number, tolerate: number): ClusterConfig {
  checkSpaceName(name);
  if (!Number.isInteger(tolerate) || tolerate < 0) throw badRequest(`--tolerate is a whole number >= 0, not ${tolerate}`);
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > partitionsMax) {
    throw badRequest(`a space has 1 to ${partitionsMax} partitions, not ${partitions}`);
  }
  if (findSpace(config, name)) throw new KvError('SPACE_EXISTS', `space "${name}" already exists`);
  const available = config.servers.filter((s) => s.state === 'available').map((s) => s.id).sort();
  const chainLength = tolerate + 1;
  if (available.length < chainLength) {
    throw new KvError(
      'UNAVAILABLE',
      `space "${name}" needs ${chainLength} available daemon(s) (tolerate ${tolerate}); ${available.length} available`,
    );
  }
  const version = config.version + 1;
  const spaceId = config.nextSpaceId;
  // Spread partitions round-robin, starting at a different daemon for each space so small spaces spread too.
  const chainOf = (p: number) =>
    Array.from({ length: chainLength }, (_, i) => available[(spaceId + p + i) % available.length]!);
  const space = {
    id: spaceId,
    name,
    tolerate,
    partitions: Array.from({ length: partitions }, (_, p) => ({ chain: chainOf(p), since: version })),
  };
  return bump(config, { spaces: [...config.spaces, space], nextSpaceId: spaceId + 1 });
}

export function rmSpace(config: ClusterConfig, name: string): ClusterConfig {
  if (!findSpace(config, name)) throw new KvError('NO_SUCH_SPACE', `space "${name}" does not exist`);
  return bump(config, { spaces: config.spaces.filter((s) => s.name !== name) });
}

/** Sets the largest stored value every daemon accepts (undefined: the default). */
export function setValueBytesMax(config: ClusterConfig, valueBytesMax: number): ClusterConfig {
  if (!Number.isSafeInteger(valueBytesMax) || valueBytesMax < 1 || valueBytesMax > frameBytesMax) {
    throw badRequest(`--value-bytes-max is 1 to ${frameBytesMax} bytes (the largest message), not ${valueBytesMax}`);
  }
  return valueBytesMaxOf(config) === valueBytesMax ? config : bump(config, { valueBytesMax });
}

export function setReadOnly(config: ClusterConfig, readOnly: boolean): ClusterConfig {
  return config.readOnly === readOnly ? config : bump(config, { readOnly });
}

/** A partition without `serverId`: out of its chain (unless it is the last member) and of its transfer. */
export function withoutServer(p: PartitionInfo, serverId: string, version: number): PartitionInfo {
  let next = p;
  if (p.chain.length > 1 && p.chain.includes(serverId)) next = { ...next, chain: p.chain.filter((id) => id !== serverId), since: version };
  if (p.joining?.server === serverId) {
    const { joining: _, ...rest } = next;
    next = { ...rest, since: version };
  } else if (p.joining?.replaces === serverId) next = { ...next, joining: { server: p.joining.server } };
  // A leaving member that is gone has left; one that is the tail again (its successor went) is a member again.
  if (next.leaving !== undefined && (!next.chain.includes(next.leaving) || next.chain.at(-1) === next.leaving)) {
    const { leaving: _, ...rest } = next;
    next = rest;
  }
  return next;
}

/**
 * A daemon caught up with a partition: it becomes the chain's new tail, and the member it replaces (a move)
 * leaves. A replaced tail leaves later (see `leaving`): writes must not be acknowledged without it while it may
 * still believe it is the tail. Refused unless it is the partition's joining daemon and the transfer came from the
 * current tail.
 */
export function promote(config: ClusterConfig, spaceId: number, partition: number, serverId: string, source: string): ClusterConfig {
  const space = config.spaces.find((s) => s.id === spaceId);
  const p = space?.partitions[partition];
  if (!space || !p || p.joining?.server !== serverId) {
    throw new KvError('STALE_CONFIG', `server ${serverId} is not joining partition ${partition} of space ${spaceId}`, config.version);
  }
  if (p.chain[p.chain.length - 1] !== source) {
    throw new KvError('STALE_CONFIG', `the transfer came from ${source}, which is no longer the tail`, config.version);
  }
  const version = config.version + 1;
  const replaces = p.joining.replaces;
  const leaving = replaces !== undefined && replaces === source ? replaces : undefined;
  const chain = [...p.chain.filter((id) => id !== replaces || id === leaving), serverId];
  const promoted: PartitionInfo = leaving === undefined ? { chain, since: version } : { chain, since: version, leaving };
  const partitions = space.partitions.map((q, i) => (i === partition ? promoted : q));
  return bump(config, { spaces: config.spaces.map((s) => (s.id === spaceId ? { ...space, partitions } : s)) });
}

/** Removes a dead server for good. Refused while it holds the only copy of some partition. */
export function forgetServer(config: ClusterConfig, serverId: string): ClusterConfig {
  const server = findServer(config, serverId);
  if (!server) throw new KvError('UNKNOWN_SERVER', `server ${serverId} is not part of cluster ${config.clusterId}`);
  if (server.state === 'available') throw badRequest(`server ${serverId} is available; stop it before forgetting it`);
  for (const space of config.spaces) {
    const only = space.partitions.findIndex((p) => p.chain.length === 1 && p.chain[0] === serverId);
    if (only >= 0) {
      throw new KvError('UNAVAILABLE', `server ${serverId} holds the only copy of partition ${only} of "${space.name}"; bring it back first`);
    }
  }
  const version = config.version + 1;
  return bump(config, {
    servers: config.servers.filter((s) => s.id !== serverId),
    spaces: config.spaces.map((space) => ({ ...space, partitions: space.partitions.map((p) => withoutServer(p, serverId, version)) })),
  });
}

/** A backup's freeze: daemons hold new writes until the config no longer carries it (or its lease ends). */
export function freeze(config: ClusterConfig, freeze: Freeze): ClusterConfig {
  if (config.freeze) throw new KvError('BACKUP_IN_PROGRESS', `the cluster is frozen for backup ${config.freeze.name}`);
  return bump(config, { freeze });
}

/** Ends the freeze (only `freezeId`'s, when given). */
export function thaw(config: ClusterConfig, freezeId?: string): ClusterConfig {
  if (!config.freeze || (freezeId !== undefined && config.freeze.id !== freezeId)) return config;
  return bump(withoutFreeze(config), {});
}

export const withoutFreeze = (config: ClusterConfig): ClusterConfig => {
  const { freeze: _, ...rest } = config;
  return rest;
};

/**
 * The config a restore writes into an empty store: read-only, a new incarnation. Server states stay as they were
 * at the cut: the leader that loads it marks every daemon down and waits for those that were serving, as after any
 * restart. No epoch: the new store counts its own leaderships (the cut's epoch stays in coordinator.bin).
 */
export function restoredCluster(saved: ClusterConfig): ClusterConfig {
  const { epoch: _, ...rest } = bump(withoutFreeze(saved), {
    incarnation: newId64(),
    restoredFrom: { incarnation: saved.incarnation, version: saved.version },
    readOnly: true,
  });
  return rest;
}

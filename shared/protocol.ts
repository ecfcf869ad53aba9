// Every message kv sends is one variant of the `Message` union below, told apart by `t`. One WebSocket message
// carries an array of them (a batch), so a busy sender coalesces many small frames into one write.
// Requests carry `id`; the answer is a `reply` or an `error` with the same id. Pushes carry no id.
import { Type, type Static, type TObject } from '@sinclair/typebox';
import { ClusterConfig } from './config.js';
import { snapshotNamePattern } from './names.js';

export const AttrValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null(), Type.Uint8Array()]);
export type AttrValue = Static<typeof AttrValue>;
export const Attrs = Type.Record(Type.String(), AttrValue);
export type Attrs = Static<typeof Attrs>;

const Id = Type.Integer({ minimum: 0 });
/** The config version the sender routed this request by. */
const Version = Type.Integer({ minimum: 0 });
const Name = Type.String({ minLength: 1 });
/** Backup and snapshot names become directory names (shared/names.ts). */
export const SnapshotName = Type.String({ pattern: snapshotNamePattern });

const request = <T extends string, P extends Record<string, import('@sinclair/typebox').TSchema>>(t: T, props: P) =>
  Type.Object({ t: Type.Literal(t), id: Id, ...props }, { additionalProperties: false });
const keyed = <T extends string, P extends Record<string, import('@sinclair/typebox').TSchema>>(t: T, props: P) =>
  request(t, { v: Version, space: Name, key: Type.String(), ...props });
/** A client session id, issued by the coordinator: 16 hex digits (8 bytes). */
export const SessionId = Type.String({ minLength: 16, maxLength: 16 });
/**
 * A write carries its request id (see daemon/completion-records.ts): the client's `session`, the write's `seq`
 * (the same in every attempt), and `awaiting`, the lowest seq the session still awaits an answer for.
 */
const written = <T extends string, P extends Record<string, import('@sinclair/typebox').TSchema>>(t: T, props: P) =>
  keyed(t, { session: SessionId, seq: Type.Integer({ minimum: 1 }), awaiting: Type.Integer({ minimum: 1 }), ...props });

export const messageSchemas = {
  // client → daemon: operations on one key
  get: keyed('get', {}),
  put: written('put', { attrs: Attrs }),
  del: written('del', {}),
  put_if_not_exist: written('put_if_not_exist', { attrs: Attrs }),
  cond_put: written('cond_put', { expect: Attrs, attrs: Attrs }),
  atomic_add: written('atomic_add', { deltas: Type.Record(Type.String(), Type.Number()) }),
  // client → daemon: operations on one partition of a space
  count: request('count', { v: Version, space: Name, partition: Type.Integer({ minimum: 0 }) }),
  scan: request('scan', {
    v: Version,
    space: Name,
    partition: Type.Integer({ minimum: 0 }),
    after: Type.Union([Type.String(), Type.Null()]),
    limit: Type.Integer({ minimum: 1 }),
  }),
  // daemon → its successor in a chain: what one batch committed in one partition (raw LevelDB keys and encoded
  // values, null for a deletion: values and completion records alike), in commit order
  replicate: request('replicate', {
    v: Version,
    spaceId: Type.Integer({ minimum: 1 }),
    partition: Type.Integer({ minimum: 0 }),
    changes: Type.Array(Type.Tuple([Type.Uint8Array(), Type.Union([Type.Uint8Array(), Type.Null()])])),
  }),
  // the tail → a daemon joining a chain: one page of the partition (raw LevelDB keys and values), in key order
  transfer: request('transfer', {
    v: Version,
    spaceId: Type.Integer({ minimum: 1 }),
    partition: Type.Integer({ minimum: 0 }),
    source: Type.String(),
    first: Type.Boolean(),
    done: Type.Boolean(),
    entries: Type.Array(Type.Tuple([Type.Uint8Array(), Type.Uint8Array()])),
  }),
  // daemon → coordinator
  register: request('register', {
    address: Type.String(),
    serverId: Type.Union([Type.String(), Type.Null()]),
    clusterId: Type.Union([Type.String(), Type.Null()]),
    /** The first registration of this daemon process: what an earlier one had in flight is lost. */
    fresh: Type.Optional(Type.Boolean()),
    /** The cluster incarnation the data dir last registered with; null or absent: not stamped yet. */
    incarnation: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    /** The daemon data format it stores (shared/data-format.ts); absent: 1. Stored bytes move between daemons as they are. */
    dataFormat: Type.Optional(Type.Integer({ minimum: 1 })),
    /** The backup cut the data dir is a copy of (its manifest.json); null or absent: a daemon's own data dir. */
    copyOf: Type.Optional(Type.Union([Type.Object({ name: Type.String(), configVersion: Type.Integer({ minimum: 1 }) }), Type.Null()])),
  }),
  leave: request('leave', {}),
  transfer_done: request('transfer_done', {
    spaceId: Type.Integer({ minimum: 1 }),
    partition: Type.Integer({ minimum: 0 }),
    source: Type.String(),
  }),
  config_ack: Type.Object({ t: Type.Literal('config_ack'), version: Version }, { additionalProperties: false }),
  /** A daemon's heartbeat: the answer grants it a read lease (daemon/read-lease.ts). */
  lease: request('lease', {}),
  /**
   * A daemon cannot reach `serverId`, its successor in some chain (or a member it sends a transfer to), or reaches
   * it again (`reachable`). Sent again while the cut lasts: a report lapses unless renewed (coordinator/cut-reports.ts).
   */
  peer_unreachable: request('peer_unreachable', { serverId: Type.String(), reachable: Type.Boolean() }),
  // clients and tools → coordinator
  /** Who leads: any coordinator answers, leader or follower (a follower answers nothing else but `status`). */
  leader: request('leader', {}),
  /** A new client session id, for the request ids of the client's writes. */
  open_session: request('open_session', {}),
  get_config: request('get_config', {}),
  subscribe: request('subscribe', {}),
  add_space: request('add_space', {
    name: Name,
    partitions: Type.Integer({ minimum: 1 }),
    tolerate: Type.Integer({ minimum: 0 }),
  }),
  rm_space: request('rm_space', { name: Name }),
  server_forget: request('server_forget', { serverId: Type.String() }),
  set_read_only: request('set_read_only', { readOnly: Type.Boolean() }),
  status: request('status', {}),
  // backups: tools → coordinator
  backup: request('backup', {
    name: SnapshotName,
    owner: Type.String(),
    leaseMs: Type.Integer({ minimum: 100 }),
    deadlineMs: Type.Integer({ minimum: 0 }),
    /** The most time the cluster may spend frozen over all attempts; absent: `backupFrozenMsMaxDefault`. */
    frozenMsMax: Type.Optional(Type.Integer({ minimum: 1 })),
    /** The token of a lock the caller holds (backup-manager); null: hold a lock just for this backup. */
    lockToken: Type.Union([Type.String(), Type.Null()]),
  }),
  /**
   * Takes the backup lock, or with `renew` renews the caller's: a renewal never takes a lock anew, so a lock that
   * ended with its leader (coordinator/backup-lock.ts) fails the backup that held it.
   */
  backup_lock: request('backup_lock', {
    name: SnapshotName,
    owner: Type.String(),
    token: Type.String(),
    ttlMs: Type.Integer({ minimum: 1 }),
    renew: Type.Optional(Type.Boolean()),
  }),
  backup_unlock: request('backup_unlock', { token: Type.String() }),
  backup_release: request('backup_release', { name: SnapshotName }),
  list_snapshots: request('list_snapshots', {}),
  // backups: coordinator → daemons
  /** `owner` is the backup's, shown by list-snapshots while the snapshot is not sealed. */
  prepare: request('prepare', { name: SnapshotName, owner: Type.Optional(Type.String()) }),
  quiesce: request('quiesce', { freezeId: Type.String() }),
  capture: request('capture', { freezeId: Type.String(), name: SnapshotName }),
  /** `owner` is the backup's, kept in the manifest so a snapshot its owner left behind can be found. */
  seal: request('seal', { name: SnapshotName, configVersion: Version, owner: Type.String() }),
  snapshots: request('snapshots', {}),
  /** With a freezeId, only a snapshot taken under that freeze is deleted (a backup backing out of its attempt). */
  // failure detection: coordinator → daemon
  /** Give up the read lease now and take no grant asked for before: the coordinator then drops it from chains. */
  revoke_lease: request('revoke_lease', {}),
  release_snapshot: request('release_snapshot', { name: SnapshotName, freezeId: Type.Union([Type.String(), Type.Null()]) }),
  // coordinator → daemons and subscribers
  config: Type.Object({ t: Type.Literal('config'), config: ClusterConfig }, { additionalProperties: false }),
  // answers
  reply: Type.Object({ t: Type.Literal('reply'), id: Id, result: Type.Unknown() }, { additionalProperties: false }),
  error: Type.Object(
    {
      t: Type.Literal('error'),
      id: Type.Union([Id, Type.Null()]),
      code: Type.String(),
      message: Type.String(),
      version: Type.Optional(Version),
    },
    { additionalProperties: false },
  ),
} satisfies Record<string, TObject>;

export type MessageType = keyof typeof messageSchemas;
export type MessageOf<T extends MessageType> = Static<(typeof messageSchemas)[T]>;
export type Message = { [T in MessageType]: MessageOf<T> }[MessageType];

/** What each request's `reply.result` holds. */
export interface Results {
  get: Attrs | null;
  put: null;
  del: boolean;
  put_if_not_exist: null;
  cond_put: null;
  atomic_add: Attrs;
  count: number;
  replicate: null;
  transfer: null;
  transfer_done: ClusterConfig;
  server_forget: ClusterConfig;
  scan: { entries: [string, Attrs][]; next: string | null };
  register: { serverId: string; clusterId: string; incarnation: string };
  leave: null;
  open_session: { session: string };
  lease: LeaseResult;
  peer_unreachable: null;
  revoke_lease: null;
  get_config: ClusterConfig;
  leader: LeaderInfo;
  subscribe: ClusterConfig;
  add_space: ClusterConfig;
  rm_space: ClusterConfig;
  set_read_only: ClusterConfig;
  status: ClusterStatus;
  backup: BackupResult;
  backup_lock: BackupLock;
  backup_unlock: null;
  backup_release: Array<{ serverId: string; released: boolean; error?: string }>;
  list_snapshots: Array<{ serverId: string; snapshots: SnapshotInfo[]; error?: string }>;
  prepare: { tables: number };
  quiesce: { quiescedMs: number };
  capture: CaptureResult;
  seal: SealResult;
  release_snapshot: boolean;
  snapshots: SnapshotInfo[];
}

/**
 * A snapshot kept on a daemon. Owner and capture time come from its manifest, or for one not sealed from what the
 * daemon process remembers (null after a restart).
 */
export interface SnapshotInfo {
  name: string;
  sealed: boolean;
  /** sealed; captured or prepared in this daemon process and not sealed yet; left: unsealed, by an earlier process. */
  state: 'sealed' | 'captured' | 'prepared' | 'left';
  owner: string | null;
  capturedAt: string | null;
  /** When its directory was made (for the age of one never captured). */
  createdAt: string;
  bytes: number;
}

export interface LeaseResult {
  /** The coordinator's config version when it answered: the lease counts once the daemon runs at least this one. */
  version: number;
  /** Silence after which the coordinator declares the daemon dead, and how often it expects a lease request. */
  timeoutMs: number;
  intervalMs: number;
}

/** A coordinator's answer to `leader`. */
export interface LeaderInfo {
  /** Whether the coordinator that answered leads now. */
  leading: boolean;
  /** The address the leader advertises, if known; null while nobody leads (an election is under way). */
  leader: string | null;
  /** The leader's epoch (coordinator/config-store.ts), if known. */
  epoch: number | null;
}

/** The coordinators and where their config lives, for show-config. */
export interface CoordinatorsInfo {
  store: { kind: 'local'; dataDir: string } | { kind: 'etcd'; endpoints: string[]; prefix: string };
  /** The one answering: the leader. */
  leader: string;
  epoch: number;
  /** Every coordinator running on this store (the leader included), by advertised address. */
  members: string[];
}

export interface BackupLock {
  /** The leader epoch the lock was taken under: it ends with that leadership. */
  epoch: number;
  name: string;
  owner: string;
  token: string;
  startedAt: string;
  expiresAt: string;
}

export interface ClusterStatus {
  config: ClusterConfig;
  lock: Omit<BackupLock, 'token'> | null;
  /** The config version each connected daemon has acknowledged. */
  acked: Record<string, number>;
  /** Daemons out of every chain because others cannot reach them, with why (coordinator/cut-reports.ts). */
  cutOff?: Record<string, string>;
  /** The live reports of one daemon that it cannot reach another. */
  cuts?: Array<{ reporter: string; peer: string }>;
  coordinators?: CoordinatorsInfo;
  /** The last backup this leader ran, if any: a new leader knows none until it runs one. */
  lastBackup?: LastBackup | null;
}

export interface LastBackup {
  name: string;
  ok: boolean;
  endedAt: string;
  /** The error, when it failed. */
  error?: string;
  /** The freeze of the cut, when it succeeded. */
  freezeMs?: number;
}

export interface CaptureResult {
  files: number;
  bytes: number;
  /** How long the daemon waited for writes in flight to finish, then how long the capture took. */
  quiescedMs: number;
  captureMs: number;
  attempts: number;
}

export interface SealResult {
  /** Absolute path of the snapshot on the daemon's host. */
  path: string;
  files: number;
  bytes: number;
}

export interface BackupResult {
  name: string;
  clusterId: string;
  configVersion: number;
  /** coordinator.bin: the config at the cut, in the state-file format. */
  coordinatorState: Uint8Array;
  attempts: number;
  /** The attempt that made the cut. */
  freeze: { beganAt: string; endedAt: string; ms: number };
  /** Time the cluster spent frozen over all attempts, the backed-out ones included. */
  frozenTotalMs: number;
  servers: Array<{ serverId: string; address: string; host: string } & SealResult & Pick<CaptureResult, 'quiescedMs' | 'captureMs'>>;
}
export type RequestType = keyof Results;
/** A request as a caller writes it: the connection assigns the id. */
export type RequestOf<T extends RequestType> = Omit<MessageOf<T>, 'id'>;

/**
 * The path a client opens a daemon connection on: it names the server and cluster it means, so a daemon that
 * took over a stale address (another cluster, or a restored copy of this one) refuses it at the handshake.
 */
export const daemonPath = (serverId: string, incarnation: string): string =>
  `/?server=${encodeURIComponent(serverId)}&incarnation=${encodeURIComponent(incarnation)}`;

/** Why a daemon refuses a connection meant for another server or cluster incarnation; undefined if it is for it. */
export function daemonPathMismatch(path: string, serverId: string | undefined, incarnation: string | undefined): string | undefined {
  const query = new URL(path, 'ws://kv').searchParams;
  const server = query.get('server');
  const wanted = query.get('incarnation');
  if (serverId !== undefined && server !== null && server !== serverId) return `this is server ${serverId}, not ${server}`;
  if (incarnation !== undefined && wanted !== null && wanted !== incarnation) return 'this daemon runs another incarnation of the cluster';
  return undefined;
}

export const writeTypes = new Set<MessageType>(['put', 'del', 'put_if_not_exist', 'cond_put', 'atomic_add']);
/**
 * Requests that may be sent again after a connection dropped with the answer unknown: reads, and every write (a
 * write's request id makes a second attempt answer the first one's result).
 */
export const retryableTypes = new Set<MessageType>([...writeTypes, 'get', 'count', 'scan', 'get_config', 'subscribe']);

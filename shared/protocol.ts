// Every message kv sends is one variant of the `Message` union below, told apart by `t`. One WebSocket message
// carries an array of them (a batch), so a busy sender coalesces many small frames into one write.
// Requests carry `id`; the answer is a `reply` or an `error` with the same id. Pushes carry no id.
import { Type, type Static, type TObject } from '@sinclair/typebox';
import { ClusterConfig } from './config.js';

export const AttrValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null(), Type.Uint8Array()]);
export type AttrValue = Static<typeof AttrValue>;
export const Attrs = Type.Record(Type.String(), AttrValue);
export type Attrs = Static<typeof Attrs>;

const Id = Type.Integer({ minimum: 0 });
/** The config version the sender routed this request by. */
const Version = Type.Integer({ minimum: 0 });
const Name = Type.String({ minLength: 1 });

const request = <T extends string, P extends Record<string, import('@sinclair/typebox').TSchema>>(t: T, props: P) =>
  Type.Object({ t: Type.Literal(t), id: Id, ...props }, { additionalProperties: false });
const keyed = <T extends string, P extends Record<string, import('@sinclair/typebox').TSchema>>(t: T, props: P) =>
  request(t, { v: Version, space: Name, key: Type.String(), ...props });

export const messageSchemas = {
  // client → daemon: operations on one key
  get: keyed('get', {}),
  put: keyed('put', { attrs: Attrs }),
  del: keyed('del', {}),
  put_if_not_exist: keyed('put_if_not_exist', { attrs: Attrs }),
  cond_put: keyed('cond_put', { expect: Attrs, attrs: Attrs }),
  atomic_add: keyed('atomic_add', { deltas: Type.Record(Type.String(), Type.Number()) }),
  // client → daemon: operations on one partition of a space
  count: request('count', { v: Version, space: Name, partition: Type.Integer({ minimum: 0 }) }),
  scan: request('scan', {
    v: Version,
    space: Name,
    partition: Type.Integer({ minimum: 0 }),
    after: Type.Union([Type.String(), Type.Null()]),
    limit: Type.Integer({ minimum: 1 }),
  }),
  // daemon → coordinator
  register: request('register', {
    address: Type.String(),
    serverId: Type.Union([Type.String(), Type.Null()]),
    clusterId: Type.Union([Type.String(), Type.Null()]),
  }),
  leave: request('leave', {}),
  config_ack: Type.Object({ t: Type.Literal('config_ack'), version: Version }, { additionalProperties: false }),
  // clients and tools → coordinator
  get_config: request('get_config', {}),
  subscribe: request('subscribe', {}),
  add_space: request('add_space', {
    name: Name,
    partitions: Type.Integer({ minimum: 1 }),
    tolerate: Type.Integer({ minimum: 0 }),
  }),
  rm_space: request('rm_space', { name: Name }),
  set_read_only: request('set_read_only', { readOnly: Type.Boolean() }),
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
  scan: { entries: [string, Attrs][]; next: string | null };
  register: { serverId: string; clusterId: string };
  leave: null;
  get_config: ClusterConfig;
  subscribe: ClusterConfig;
  add_space: ClusterConfig;
  rm_space: ClusterConfig;
  set_read_only: ClusterConfig;
}
export type RequestType = keyof Results;
/** A request as a caller writes it: the connection assigns the id. */
export type RequestOf<T extends RequestType> = Omit<MessageOf<T>, 'id'>;

export const writeTypes = new Set<MessageType>(['put', 'del', 'put_if_not_exist', 'cond_put', 'atomic_add']);
/** Requests that may be sent again after a connection dropped with the answer unknown. */
export const idempotentTypes = new Set<MessageType>(['get', 'put', 'del', 'count', 'scan', 'get_config', 'subscribe']);

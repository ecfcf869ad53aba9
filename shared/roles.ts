// Who may ask what, once TLS is on. A peer's role is fixed when its connection is accepted (from the OU of its
// certificate, tls.ts) and every request is checked against it before anything runs; TLS off, a connection has no
// role and everything is allowed, as before. The coordinator's cluster-changing and snapshot requests are the
// admin's; the daemon protocol is the daemons'; reading the config and opening a session are anyone's.
import { KvError } from './errors.js';
import type { MessageType } from './protocol.js';

export const roles = ['daemon', 'coordinator', 'client', 'admin'] as const;
export type Role = (typeof roles)[number];

/** The OU a role's certificate carries: `kv certs issue --role R` writes it. */
export const organizationalUnitOf = (role: Role): string => `kv-${role}`;

export function roleOfOrganizationalUnit(unit: string | undefined): Role | undefined {
  return roles.find((role) => organizationalUnitOf(role) === unit);
}

/** Who may send a message type to each kind of server; a server missing from an entry refuses it to every role. */
type Rule = Partial<Record<'coordinator' | 'daemon', readonly Role[]>>;

const anyone: readonly Role[] = roles;
const admin: readonly Role[] = ['admin'];
const daemon: readonly Role[] = ['daemon'];
const dataUser: readonly Role[] = ['client', 'admin', 'daemon'];
/**
 * Sent by the coordinator over a daemon's own session (which the daemon opened to a server whose coordinator
 * certificate it checked), or an answer or push: never a request to a server that accepted the connection.
 */
const overSession: Rule = {};

/**
 * Every message type, so that a new one does not compile until it says who may send it: the cluster-changing and
 * snapshot requests are the admin's, the daemon protocol the daemons', reading the config anyone's.
 */
const rules: Record<MessageType, Rule> = {
  get: { daemon: dataUser },
  put: { daemon: dataUser },
  del: { daemon: dataUser },
  put_if_not_exist: { daemon: dataUser },
  cond_put: { daemon: dataUser },
  atomic_add: { daemon: dataUser },
  count: { daemon: dataUser },
  scan: { daemon: dataUser },
  replicate: { daemon },
  transfer: { daemon },
  register: { coordinator: daemon },
  leave: { coordinator: daemon },
  transfer_done: { coordinator: daemon },
  config_ack: { coordinator: daemon },
  lease: { coordinator: daemon },
  peer_unreachable: { coordinator: daemon },
  leader: { coordinator: anyone },
  open_session: { coordinator: anyone },
  get_config: { coordinator: anyone },
  subscribe: { coordinator: anyone },
  status: { coordinator: anyone },
  add_space: { coordinator: admin },
  rm_space: { coordinator: admin },
  server_forget: { coordinator: admin },
  set_read_only: { coordinator: admin },
  backup: { coordinator: admin },
  backup_lock: { coordinator: admin },
  backup_unlock: { coordinator: admin },
  backup_release: { coordinator: admin },
  list_snapshots: { coordinator: admin },
  prepare: overSession,
  quiesce: overSession,
  capture: overSession,
  seal: overSession,
  snapshots: overSession,
  revoke_lease: overSession,
  release_snapshot: overSession,
  config: overSession,
  reply: overSession,
  error: overSession,
};

/** FORBIDDEN unless `role` may send `type` to `server`; no role (TLS off) may send anything. */
export function checkAllowed(server: 'coordinator' | 'daemon', role: Role | undefined, type: MessageType): void {
  if (role === undefined) return;
  const allowed = rules[type][server];
  if (allowed?.includes(role)) return;
  const who = allowed ? `role ${allowed.join(' or ')}` : 'no role';
  throw new KvError('FORBIDDEN', `${type} needs ${who}; this connection's certificate has role ${role}`);
}

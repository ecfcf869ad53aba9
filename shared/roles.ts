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

type Rules = Partial<Record<MessageType, readonly Role[]>>;

const anyone: readonly Role[] = roles;
const admin: readonly Role[] = ['admin'];
const daemon: readonly Role[] = ['daemon'];
const dataUser: readonly Role[] = ['client', 'admin', 'daemon'];

/** What the coordinator serves, and to whom. A type missing here is refused to every role. */
export const coordinatorRules: Rules = {
  register: daemon,
  lease: daemon,
  leave: daemon,
  transfer_done: daemon,
  config_ack: daemon,
  get_config: anyone,
  subscribe: anyone,
  open_session: anyone,
  status: anyone,
  add_space: admin,
  rm_space: admin,
  server_forget: admin,
  set_read_only: admin,
  backup: admin,
  backup_lock: admin,
  backup_unlock: admin,
  backup_release: admin,
  list_snapshots: admin,
};

/** What a daemon serves to the connections it accepts (the coordinator's requests come over the daemon's own session). */
export const daemonRules: Rules = {
  get: dataUser,
  put: dataUser,
  del: dataUser,
  put_if_not_exist: dataUser,
  cond_put: dataUser,
  atomic_add: dataUser,
  count: dataUser,
  scan: dataUser,
  replicate: daemon,
  transfer: daemon,
};

/** FORBIDDEN unless `role` may send `type` under `rules`; no role (TLS off) may send anything. */
export function checkAllowed(rules: Rules, role: Role | undefined, type: MessageType): void {
  if (role === undefined) return;
  const allowed = rules[type];
  if (allowed?.includes(role)) return;
  const who = allowed ? `role ${allowed.join(' or ')}` : 'no role';
  throw new KvError('FORBIDDEN', `${type} needs ${who}; this connection's certificate has role ${role}`);
}

// The TLS material of one process, in one object made once from --tls-cert, --tls-key and --tls-ca and passed to
// where connections are made (Connection.open, ConnectionPool, listen, the client's options). Undefined means TLS
// off: plain ws://, every peer trusted, as before. With it, every connection is wss:// and both ends show a
// certificate signed by the cluster CA: the server's is checked by the client against the address it dialled (a
// SAN), the client's by the server, which reads the peer's role from it (roles.ts).
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { badRequest } from './errors.js';
import { roleOfOrganizationalUnit, type Role } from './roles.js';

export interface TlsSettings {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface TlsFiles {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
}

/** The settings the three flags name (all three or none; each file readable), or undefined for TLS off. */
export function loadTls(files: TlsFiles): TlsSettings | undefined {
  const given = (['cert', 'key', 'ca'] as const).filter((name) => files[name] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length < 3) {
    const missing = (['cert', 'key', 'ca'] as const).filter((name) => files[name] === undefined).map((name) => `--tls-${name}`);
    throw badRequest(`TLS needs --tls-cert, --tls-key and --tls-ca together; ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing`);
  }
  const read = (name: 'cert' | 'key' | 'ca') => {
    try {
      return readFileSync(files[name]!);
    } catch (error) {
      throw badRequest(`--tls-${name} ${files[name]}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  };
  return { cert: read('cert'), key: read('key'), ca: read('ca') };
}

/** How an accepted connection authenticated: verified (with its role), or why not. */
export type PeerIdentity = { ok: true; role: Role } | { ok: false; why: string };

/** The peer of an upgrade request on a TLS server: its certificate was verified against the CA, and names a role. */
export function identify(request: IncomingMessage): PeerIdentity {
  const socket = request.socket as TLSSocket;
  if (!socket.encrypted) return { ok: false, why: 'the connection is not TLS' };
  if (!socket.authorized) {
    const error = String(socket.authorizationError ?? 'no certificate');
    const why = /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|CERT_SIGNATURE_FAILURE/.test(error)
      ? "its certificate is not signed by this cluster's CA"
      : /PEER_DID_NOT_RETURN|no certificate/i.test(error) ? 'it presented no certificate (give --tls-cert, --tls-key, --tls-ca)' : `its certificate was refused (${error})`;
    return { ok: false, why };
  }
  const unit = socket.getPeerCertificate().subject?.OU;
  const role = roleOfOrganizationalUnit(Array.isArray(unit) ? unit[0] : unit);
  if (!role) return { ok: false, why: 'its certificate names no kv role (OU=kv-daemon, kv-coordinator, kv-client or kv-admin)' };
  return { ok: true, role };
}

/** Where a request came from, for the log: the remote address and port. */
export function peerAddressOf(request: IncomingMessage): string {
  const { remoteAddress, remotePort } = request.socket;
  return remoteAddress?.includes(':') ? `[${remoteAddress}]:${remotePort}` : `${remoteAddress}:${remotePort}`;
}

// The TLS material of one process, in one object made once from --tls-cert, --tls-key and --tls-ca (and a client's
// --token-file) and passed to
// where connections are made (Connection.open, ConnectionPool, listen, the client's options). Undefined means TLS
// off: plain ws://, every peer trusted, as before. With it, every connection is wss:// and both ends show a
// certificate signed by the cluster CA: the server's is checked by the client against the address it dialled (a
// SAN), the client's by the server, which reads the peer's role from it (roles.ts).
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { badRequest } from './errors.js';
import { roleOfOrganizationalUnit, type Role } from './roles.js';
import { bearerToken, parseTokenFile, verifyToken } from './token.js';

export interface TlsSettings {
  /** This process's certificate and key; a client may have a token instead (servers always have both). */
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  ca: Buffer;
  /** A client's credential without a certificate (token.ts), sent as `Authorization: Bearer`. */
  token?: string | undefined;
}

export interface TlsFiles {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
  token?: string | undefined;
}

const flagOf = { cert: '--tls-cert', key: '--tls-key', ca: '--tls-ca', token: '--token-file' } as const;

/**
 * The settings the flags name, or undefined for TLS off (no flag at all). TLS on needs the CA and a credential:
 * a certificate and its key, or (a client) a token file; each file readable.
 */
export function loadTls(files: TlsFiles): TlsSettings | undefined {
  const given = (Object.keys(flagOf) as Array<keyof TlsFiles>).filter((name) => files[name] !== undefined);
  if (given.length === 0) return undefined;
  const missing = (['cert', 'key', 'ca'] as const).filter((name) => files[name] === undefined);
  const pairless = (files.cert === undefined) !== (files.key === undefined);
  if (files.ca === undefined || pairless || (files.cert === undefined && files.token === undefined)) {
    const names = missing.map((name) => flagOf[name]);
    throw badRequest(`TLS needs --tls-cert, --tls-key and --tls-ca together (or, for a client, --tls-ca and --token-file); ${names.join(' and ')} ${names.length > 1 ? 'are' : 'is'} missing`);
  }
  const read = (name: keyof TlsFiles) => {
    try {
      return readFileSync(files[name]!);
    } catch (error) {
      throw badRequest(`${flagOf[name]} ${files[name]}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  };
  return {
    ca: read('ca'),
    ...(files.cert !== undefined && { cert: read('cert'), key: read('key') }),
    ...(files.token !== undefined && { token: parseTokenFile(read('token').toString('utf8'), files.token) }),
  };
}

/** How an accepted connection authenticated: verified (with its role), or why not. */
export type PeerIdentity = { ok: true; role: Role } | { ok: false; why: string };

/**
 * The peer of an upgrade request on a TLS server: a certificate verified against the CA naming a role, or else a
 * token the CA signed (token.ts).
 */
export function identify(request: IncomingMessage, ca: Buffer): PeerIdentity {
  const socket = request.socket as TLSSocket;
  if (!socket.encrypted) return { ok: false, why: 'the connection is not TLS' };
  if (!socket.authorized) {
    const token = bearerToken(request.headers.authorization);
    if (token !== undefined) {
      const check = verifyToken(token, ca);
      return check.ok ? { ok: true, role: check.role } : check;
    }
    const error = String(socket.authorizationError ?? 'no certificate');
    const why = /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|CERT_SIGNATURE_FAILURE/.test(error)
      ? "its certificate is not signed by this cluster's CA"
      : /PEER_DID_NOT_RETURN|no certificate/i.test(error) ? 'it presented no certificate or token (--tls-cert and --tls-key, or --token-file)' : `its certificate was refused (${error})`;
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

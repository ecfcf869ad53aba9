// Tokens: a client's credential without a certificate of its own. A short statement (role, name, expiry) signed
// with the cluster CA's key by `kv certs token`, checked by any server with the CA certificate it already has, and
// sent as `Authorization: Bearer` in the WebSocket upgrade (over TLS, which still verifies the server). A token is
// a bearer secret: whoever holds it has its role until it expires (there is no revocation list), so keep them short.
import { X509Certificate, createPrivateKey, sign, verify } from 'node:crypto';
import { badRequest } from './errors.js';
import { tokenBytesMax } from './limits.js';
import type { Role } from './roles.js';

/** What a token says. Only clients and admins hold tokens: cluster members prove themselves with certificates. */
export interface TokenClaims {
  role: 'client' | 'admin';
  name: string;
  /** Milliseconds since the epoch after which the token is refused. */
  expiresAt: number;
}

const prefix = 'kv1';
const encode = (bytes: Buffer) => bytes.toString('base64url');

export function signToken(claims: TokenClaims, caKeyPem: Buffer): string {
  const body = encode(Buffer.from(JSON.stringify(claims)));
  const signature = sign('sha256', Buffer.from(`${prefix}.${body}`), createPrivateKey(caKeyPem));
  return `${prefix}.${body}.${encode(signature)}`;
}

export type TokenCheck = { ok: true; role: Role; name: string } | { ok: false; why: string };

/** Whether `token` was signed by the CA of `caPem` and is still valid, and for which role. */
export function verifyToken(token: string, caPem: Buffer, nowMs = Date.now()): TokenCheck {
  const refused = (why: string): TokenCheck => ({ ok: false, why: `its token ${why}` });
  if (token.length > tokenBytesMax) return refused(`is over ${tokenBytesMax} bytes`);
  const [head, body, signature, ...rest] = token.split('.');
  if (head !== prefix || body === undefined || signature === undefined || rest.length > 0) return refused('is not a kv token (kv certs token)');
  let signed: boolean;
  try {
    signed = verify('sha256', Buffer.from(`${prefix}.${body}`), new X509Certificate(caPem).publicKey, Buffer.from(signature, 'base64url'));
  } catch {
    signed = false;
  }
  if (!signed) return refused("is not signed by this cluster's CA");
  let claims: Partial<TokenClaims>;
  try {
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Partial<TokenClaims>;
  } catch {
    return refused('is damaged');
  }
  if (claims.role !== 'client' && claims.role !== 'admin') return refused('names no client or admin role');
  if (typeof claims.expiresAt !== 'number' || !(claims.expiresAt > nowMs)) return refused(`expired at ${new Date(claims.expiresAt ?? 0).toISOString()}`);
  return { ok: true, role: claims.role, name: String(claims.name) };
}

/** The token in an upgrade request's Authorization header, if it carries one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization?.trim() ?? '');
  return match?.[1];
}

/** A token file's text: the token alone, on one line. */
export function parseTokenFile(text: string, path: string): string {
  const token = text.trim();
  if (token === '' || /\s/.test(token)) throw badRequest(`--token-file ${path} must hold one token (kv certs token writes one)`);
  return token;
}

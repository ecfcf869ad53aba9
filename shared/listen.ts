// Starting a WebSocket server, with "port in use" turned into one clear error. With TLS settings, over https:
// every client must show a certificate of the cluster CA naming a role (tls.ts), or the upgrade is refused with
// 401 and the reason in the body, before any request of it is read.
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { WebSocketServer } from 'ws';
import { KvError, badRequest } from './errors.js';
import { frameBytesMax, tcpKeepAliveDelayMs } from './limits.js';
import { formatAddress } from './address.js';
import { identify, peerAddressOf, type TlsSettings } from './tls.js';
import type { Role } from './roles.js';

/** Judges a connection before it is accepted, by the path it asked for: a reason to refuse it, or undefined. */
export type Admission = (path: string) => string | undefined;

/** Told of each upgrade refused for its credential: who knocked, and why it was refused. */
export type OnRefused = (peer: string, why: string) => void;

type VerifyDone = (ok: boolean, code?: number, reason?: string) => void;

export function listen(
  host: string,
  port: number,
  admit?: Admission,
  tls?: TlsSettings,
  onRefused?: OnRefused,
): Promise<{ server: WebSocketServer; address: string }> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(badRequest(`cannot listen on port ${port}: a port is a whole number from 0 to 65535`));
  }
  return new Promise((resolve, reject) => {
    const verifyClient = (info: { req: IncomingMessage }, done: VerifyDone) => {
      if (tls) {
        const identity = identify(info.req, tls.ca);
        if (!identity.ok) {
          onRefused?.(peerAddressOf(info.req), identity.why);
          return done(false, 401, identity.why);
        }
        admitted.set(info.req, identity.role);
      }
      const refusal = admit?.(info.req.url ?? '/');
      // 421 Misdirected Request: the client meant another server.
      if (refusal) done(false, 421, refusal);
      else done(true);
    };
    const common = { maxPayload: frameBytesMax, perMessageDeflate: false, ...((admit || tls) && { verifyClient }) };
    let web: HttpsServer | undefined;
    let server: WebSocketServer;
    if (tls) {
      if (!tls.cert || !tls.key) return reject(badRequest('a server with TLS on needs its own certificate: --tls-cert and --tls-key'));
      // The certificate is verified here, not in the handshake, so that a refused client hears why (HTTP 401).
      web = createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: false }, (_request, response) => {
        response.writeHead(426, { 'content-type': 'text/plain' }).end('kv speaks WebSocket here\n');
      });
      server = new WebSocketServer({ server: web, ...common });
      // ws leaves a server it was given open: close it with the WebSocket server, as ws does its own.
      const closeWs = server.close.bind(server);
      server.close = (callback?: (error?: Error) => void) => {
        closeWs(callback);
        web!.close();
      };
      web.listen(port, host);
    } else server = new WebSocketServer({ host, port, ...common });
    // The peer's host may vanish without a FIN: the kernel's keep-alive closes such a socket in the end.
    server.on('connection', (_socket, request) => request.socket.setKeepAlive(true, tcpKeepAliveDelayMs));
    const events = web ?? server;
    events.once('error', (error: NodeJS.ErrnoException) => {
      server.close();
      if (error.code === 'EADDRINUSE') {
        reject(new KvError('ADDRESS_IN_USE', `${formatAddress({ host, port })} is already in use by another process`));
      } else reject(new KvError('UNAVAILABLE', `cannot listen on ${formatAddress({ host, port })}: ${error.message}`));
    });
    events.once('listening', () => {
      const bound = (web ?? server).address();
      const actualPort = typeof bound === 'object' && bound ? bound.port : port;
      resolve({ server, address: formatAddress({ host, port: actualPort }) });
    });
  });
}

/** The role each accepted upgrade request proved, as judged once when it was accepted. */
const admitted = new WeakMap<IncomingMessage, Role>();

/**
 * The role of an accepted connection's peer, fixed when listen accepted it: undefined with TLS off (every peer
 * trusted), null for a request listen did not admit (never, as ws admits through verifyClient: refuse it anyway).
 */
export function roleOf(request: IncomingMessage, tls: TlsSettings | undefined): Role | undefined | null {
  if (!tls) return undefined;
  return admitted.get(request) ?? null;
}

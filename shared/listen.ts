// Starting a WebSocket server, with "port in use" turned into one clear error.
import { WebSocketServer } from 'ws';
import { KvError, badRequest } from './errors.js';
import { frameBytesMax, tcpKeepAliveDelayMs } from './limits.js';
import { formatAddress } from './address.js';

/** Judges a connection before it is accepted, by the path it asked for: a reason to refuse it, or undefined. */
export type Admission = (path: string) => string | undefined;

export function listen(host: string, port: number, admit?: Admission): Promise<{ server: WebSocketServer; address: string }> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(badRequest(`cannot listen on port ${port}: a port is a whole number from 0 to 65535`));
  }
  return new Promise((resolve, reject) => {
    const server = new WebSocketServer({
      host,
      port,
      maxPayload: frameBytesMax,
      perMessageDeflate: false,
      ...(admit && {
        verifyClient: (info: { req: { url?: string } }, done: (ok: boolean, code?: number, reason?: string) => void) => {
          const refusal = admit(info.req.url ?? '/');
          // 421 Misdirected Request: the client meant another server.
          if (refusal) done(false, 421, refusal);
          else done(true);
        },
      }),
    });
    // The peer's host may vanish without a FIN: the kernel's keep-alive closes such a socket in the end.
    server.on('connection', (_socket, request) => request.socket.setKeepAlive(true, tcpKeepAliveDelayMs));
    server.once('error', (error: NodeJS.ErrnoException) => {
      server.close();
      if (error.code === 'EADDRINUSE') {
        reject(new KvError('ADDRESS_IN_USE', `${formatAddress({ host, port })} is already in use by another process`));
      } else reject(new KvError('UNAVAILABLE', `cannot listen on ${formatAddress({ host, port })}: ${error.message}`));
    });
    server.once('listening', () => {
      const bound = server.address();
      const actualPort = typeof bound === 'object' && bound ? bound.port : port;
      resolve({ server, address: formatAddress({ host, port: actualPort }) });
    });
  });
}

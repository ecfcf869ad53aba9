// Prometheus metrics (prom-client): each process keeps one registry and serves it as text on --metrics-port
// (GET /metrics). Off unless asked for. The hot path only increments pre-bound children (no label lookups).
import { createServer, type Server } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { formatAddress } from './address.js';
import { KvError } from './errors.js';

/** A registry with Node's own process metrics (CPU, memory, event loop lag, GC), labelled with the role. */
export function newRegistry(role: 'daemon' | 'coordinator'): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry, prefix: 'kv_' });
  return registry;
}

export interface MetricsEndpoint {
  address: string;
  close(): Promise<void>;
}

/** Serves `registry` at http://HOST:PORT/metrics; a port in use is ADDRESS_IN_USE, in one line. */
export function serveMetrics(host: string, port: number, registry: Registry): Promise<MetricsEndpoint> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('kv serves only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'EADDRINUSE'
        ? new KvError('ADDRESS_IN_USE', `the metrics port ${formatAddress({ host, port })} is already in use by another process`)
        : new KvError('UNAVAILABLE', `cannot serve metrics on ${formatAddress({ host, port })}: ${error.message}`));
    });
    server.listen(port, host, () => {
      const bound = server.address();
      const actual = typeof bound === 'object' && bound ? bound.port : port;
      resolve({ address: formatAddress({ host, port: actual }), close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

// One connection per (address, path), opened on first use and forgotten when it closes. Clients keep one per
// daemon; daemons keep one per chain successor. Many requests share a connection (pipelining).
import { Connection } from './connection.js';
import { requestTimeoutMsDefault } from './limits.js';

export class ConnectionPool {
  private readonly connections = new Map<string, Promise<Connection>>();

  get(address: string, path: string, timeoutMs: number): Promise<Connection> {
    const key = address + path;
    let connection = this.connections.get(key);
    if (!connection) {
      connection = Connection.open(address, () => {}, Math.min(timeoutMs, requestTimeoutMsDefault), path);
      this.connections.set(key, connection);
      const forget = () => {
        if (this.connections.get(key) === connection) this.connections.delete(key);
      };
      connection.then((c) => c.onceClosed(forget), forget);
    }
    return connection;
  }

  /** Drops every connection to `address` at once: requests waiting on them fail with CONNECTION_LOST. */
  dropAddress(address: string): void {
    for (const [key, connection] of this.connections) {
      if (!key.startsWith(address + '/')) continue;
      this.connections.delete(key);
      connection.then((c) => c.terminate(), () => {});
    }
  }

  async closeAll(): Promise<void> {
    const all = await Promise.allSettled(this.connections.values());
    for (const c of all) if (c.status === 'fulfilled') c.value.close();
    this.connections.clear();
  }
}

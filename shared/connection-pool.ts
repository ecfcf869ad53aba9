// One connection per (address, path), opened on first use and forgotten when it closes. Clients keep one per
// daemon; daemons keep one per chain successor. Many requests share a connection (pipelining). Every connection
// is watched (Connection.watch): one that goes silent is dropped, so its requests fail at once and the next use
// opens a new one, instead of waiting out their timeouts on a socket whose peer is gone.
import { Connection } from './connection.js';
import { peerConnectTimeoutMs, peerPingIntervalMs, peerSilenceMsMax, requestTimeoutMsDefault } from './limits.js';

export interface PoolOptions {
  /** Longest wait for a connection to open. */
  connectTimeoutMs: number;
  pingIntervalMs: number;
  silenceMsMax: number;
  /** Told when a connection went silent and was dropped: how long it had been silent. */
  onSilent?: (address: string, silentMs: number) => void;
}

const poolDefaults: PoolOptions = {
  connectTimeoutMs: peerConnectTimeoutMs,
  pingIntervalMs: peerPingIntervalMs,
  silenceMsMax: peerSilenceMsMax,
};

interface Entry {
  opening: Promise<Connection>;
  /** Set once open: a hot path takes it without waiting on the promise. */
  open: Connection | undefined;
}

export class ConnectionPool {
  private readonly connections = new Map<string, Entry>();
  private readonly options: PoolOptions;

  constructor(options: Partial<PoolOptions> = {}) {
    this.options = { ...poolDefaults, ...options };
  }

  /** The name a connection to `path` on `address` goes by in this pool (see `ready`). */
  static key(address: string, path: string): string {
    return address + path;
  }

  get(address: string, path: string, timeoutMs: number): Promise<Connection> {
    const key = ConnectionPool.key(address, path);
    const known = this.connections.get(key);
    if (known) return known.opening;
    const entry: Entry = {
      opening: Connection.open(address, () => {}, Math.min(timeoutMs, requestTimeoutMsDefault, this.options.connectTimeoutMs), path),
      open: undefined,
    };
    this.connections.set(key, entry);
    const forget = () => {
      if (this.connections.get(key) === entry) this.connections.delete(key);
    };
    entry.opening.then((c) => {
      entry.open = c;
      c.onceClosed(forget);
      const { pingIntervalMs, silenceMsMax, onSilent } = this.options;
      c.watch(pingIntervalMs, silenceMsMax, onSilent && ((silentMs) => onSilent(address, silentMs)));
    }, forget);
    return entry.opening;
  }

  /** The open connection named `key`, or undefined when it is not open (yet): then `get` opens or awaits it. */
  ready(key: string): Connection | undefined {
    const open = this.connections.get(key)?.open;
    return open && !open.closed ? open : undefined;
  }

  /** Drops every connection to `address` at once: requests waiting on them fail with CONNECTION_LOST. */
  dropAddress(address: string): void {
    for (const [key, entry] of this.connections) {
      if (!key.startsWith(address + '/')) continue;
      this.connections.delete(key);
      entry.opening.then((c) => c.terminate(), () => {});
    }
  }

  async closeAll(): Promise<void> {
    const all = await Promise.allSettled([...this.connections.values()].map((entry) => entry.opening));
    for (const c of all) if (c.status === 'fulfilled') c.value.close();
    this.connections.clear();
  }
}

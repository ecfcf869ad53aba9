// A TCP proxy that can turn into a black hole: from `blackHole()` on it forwards nothing either way and closes
// nothing, as a network that drops packets does (no RST, no FIN). `heal()` forwards again, on new connections
// only: those that fell into the hole stay dead, as TCP would after its retries.
import net from 'node:net';

export class BlackHoleProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private dropping = false;
  port = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((downstream) => this.accept(downstream));
  }

  static async start(target: { host: string; port: number }): Promise<BlackHoleProxy> {
    const proxy = new BlackHoleProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  blackHole(): void {
    this.dropping = true;
  }

  heal(): void {
    this.dropping = false;
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(downstream: net.Socket): void {
    this.sockets.add(downstream);
    downstream.on('close', () => this.sockets.delete(downstream));
    downstream.on('error', () => {});
    if (this.dropping) return; // accepted (the SYN got an answer from somewhere), then nothing
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    upstream.on('error', () => downstream.destroy());
    let fellIn = false;
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk: Buffer) => {
        if (this.dropping) fellIn = true;
        if (!fellIn) to.write(chunk);
      });
      from.on('end', () => {
        if (!fellIn && !this.dropping) to.end();
      });
    };
    forward(downstream, upstream);
    forward(upstream, downstream);
  }
}

/** A proxy per etcd member, for one process: black-holing all of them cuts that process off from etcd. */
export async function etcdProxies(endpoints: string[]): Promise<{ proxies: BlackHoleProxy[]; urls: string[]; blackHole(): void; heal(): void; close(): Promise<void> }> {
  const proxies = await Promise.all(endpoints.map((e) => {
    const url = new URL(e);
    return BlackHoleProxy.start({ host: url.hostname, port: Number(url.port) });
  }));
  return {
    proxies,
    urls: proxies.map((p) => p.url),
    blackHole: () => proxies.forEach((p) => p.blackHole()),
    heal: () => proxies.forEach((p) => p.heal()),
    close: async () => void (await Promise.all(proxies.map((p) => p.close()))),
  };
}

// A TCP proxy between a daemon and its coordinator that can hold the coordinator's messages from a given one on
// and deliver them later, in order, followed by any close that happened meanwhile: a request sent into a network
// cut and delivered after the heal. The daemon's own traffic to the coordinator keeps flowing. The coordinator's
// frames are plain msgpack over unmasked WebSocket frames, so a request type shows in the bytes (`msgpackString`).
import net from 'node:net';

/** A short string as msgpack encodes it (fixstr): how a request's `t` appears on the wire. */
export const msgpackString = (text: string) => Buffer.concat([Buffer.from([0xa0 | text.length]), Buffer.from(text, 'utf8')]);

class Pair {
  private readonly queue: Buffer[] = [];
  private holding = false;
  private upstreamClosed = false;

  constructor(
    readonly downstream: net.Socket,
    readonly upstream: net.Socket,
    private readonly proxy: HoldingProxy,
  ) {
    downstream.on('error', () => {});
    upstream.on('error', () => {});
    downstream.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (!this.holding && this.proxy.matches(chunk)) this.holding = true;
      if (this.holding) this.queue.push(chunk);
      else downstream.write(chunk);
    });
    upstream.on('close', () => {
      this.upstreamClosed = true;
      if (!this.holding) downstream.end();
    });
    downstream.on('close', () => upstream.destroy());
  }

  get held(): boolean {
    return this.queue.length > 0;
  }

  release(): void {
    if (!this.holding) return;
    this.holding = false;
    for (const chunk of this.queue.splice(0)) this.downstream.write(chunk);
    if (this.upstreamClosed) this.downstream.end();
  }

  destroy(): void {
    this.downstream.destroy();
    this.upstream.destroy();
  }
}

export class HoldingProxy {
  private readonly pairs = new Set<Pair>();
  private marker: Buffer | undefined;
  address = '';

  private constructor(private readonly server: net.Server) {}

  static async start(target: string): Promise<HoldingProxy> {
    const colon = target.lastIndexOf(':');
    const server = net.createServer();
    const proxy = new HoldingProxy(server);
    server.on('connection', (socket) => {
      const upstream = net.connect(Number(target.slice(colon + 1)), target.slice(0, colon));
      const pair = new Pair(socket, upstream, proxy);
      proxy.pairs.add(pair);
      socket.once('close', () => proxy.pairs.delete(pair));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    return proxy;
  }

  /** From the first coordinator chunk containing `marker` on, each connection holds what the coordinator sends. */
  holdFrom(marker: Buffer): void {
    this.marker = marker;
  }

  matches(chunk: Buffer): boolean {
    return this.marker !== undefined && chunk.includes(this.marker);
  }

  /** Whether some connection holds coordinator bytes now. */
  get holding(): boolean {
    return [...this.pairs].some((p) => p.held);
  }

  /** Delivers everything held, then the closes that came meanwhile; holds nothing more. */
  release(): void {
    this.marker = undefined;
    for (const pair of this.pairs) pair.release();
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) pair.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

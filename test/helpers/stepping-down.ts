// A coordinator that leads and then steps down, made of a real one: until `stepDown()` it passes every frame to the
// real coordinator and back (and says it leads); from then on it answers as a follower does, `leader` with the real
// coordinator's address and everything else NOT_LEADER, and passes nothing on. Replicated coordinators are built
// elsewhere; this is the one fake host the leader finder's tests need, to show clients and daemons following a
// leader that steps down. `SteppingDown.follower` is one that never led: it names a leader, or none (an election).
import { WebSocketServer, WebSocket } from 'ws';
import { decodeBatch, encodeBatch } from '../../shared/codec.js';
import type { Message } from '../../shared/protocol.js';
import type { TestLike } from './cluster.js';

export class SteppingDown {
  private leading = true;

  private constructor(
    private readonly server: WebSocketServer,
    /** The real coordinator, HOST:PORT; null: a follower that knows no leader. */
    readonly leader: string | null,
    /** Where this one listens, HOST:PORT. */
    readonly address: string,
  ) {}

  static async start(t: TestLike, leader: string | null): Promise<SteppingDown> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const fake = new SteppingDown(server, leader, `127.0.0.1:${(server.address() as { port: number }).port}`);
    server.on('connection', (socket, request) => fake.accept(socket, request.url ?? '/'));
    t.teardown(() => {
      for (const client of server.clients) client.terminate();
      server.close();
    });
    return fake;
  }

  /** A follower from the start, naming `leader` (or, null, none) when asked who leads. */
  static async follower(t: TestLike, leader: string | null): Promise<SteppingDown> {
    const fake = await SteppingDown.start(t, leader);
    fake.stepDown();
    return fake;
  }

  /** From now on a follower: connections stay open, every request but `leader` is answered NOT_LEADER. */
  stepDown(): void {
    this.leading = false;
  }

  private accept(socket: WebSocket, path: string): void {
    socket.on('error', () => {});
    const upstream = this.leading && this.leader !== null ? new WebSocket(`ws://${this.leader}${path}`) : undefined;
    const early: Buffer[] = [];
    if (upstream) {
      upstream.on('open', () => early.splice(0).forEach((data) => upstream.send(data)));
      upstream.on('message', (data: Buffer) => {
        if (this.leading) socket.send(data);
      });
      upstream.on('close', () => socket.close());
      upstream.on('error', () => {});
      socket.on('close', () => upstream.terminate());
    }
    socket.on('message', (data: Buffer) => {
      const frames = decodeBatch(data).flatMap((frame) => (frame.ok ? [frame.message] : []));
      const leaderAsked = frames.filter((m) => m.t === 'leader');
      // Asked who leads: answered here, so that it says so even while it passes the rest on.
      if (leaderAsked.length > 0) socket.send(encodeBatch(leaderAsked.map((m) => this.leaderAnswer(m))));
      const rest = frames.filter((m) => m.t !== 'leader');
      if (rest.length === 0) return;
      if (!this.leading || !upstream) {
        const refusals = rest.flatMap((m): Message[] =>
          'id' in m && m.t !== 'reply' && m.t !== 'error'
            ? [{ t: 'error', id: m.id as number, code: 'NOT_LEADER', message: `${this.address} does not lead` }]
            : [],
        );
        if (refusals.length > 0) socket.send(encodeBatch(refusals));
        return;
      }
      const batch = encodeBatch(rest);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(batch);
      else early.push(batch);
    });
  }

  private leaderAnswer(request: Message): Message {
    const id = (request as { id: number }).id;
    return { t: 'reply', id, result: this.leading ? { leading: true, leader: this.address, epoch: 0 } : { leading: false, leader: this.leader, epoch: 0 } };
  }
}

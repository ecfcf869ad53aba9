// One WebSocket between two kv processes, seen from either end: frames out are coalesced into one message per
// event-loop turn; requests get ids and wait for their reply; everything else goes to the owner's handler.
// A peer's bad frame is answered with BAD_REQUEST and never closes the connection or throws.
import WebSocket from 'ws';
import { decodeBatch, encodeBatch } from './codec.js';
import { KvError, isErrorCode, type ErrorCode } from './errors.js';
import { frameBytesMax } from './limits.js';
import type { Message, RequestOf, RequestType, Results } from './protocol.js';
import { wsUrl } from './address.js';

export type FrameHandler = (message: Message, connection: Connection) => void;

interface Pending {
  resolve: (result: unknown) => void;
  reject: (error: KvError) => void;
  timer: NodeJS.Timeout;
}

export class Connection {
  private outbox: Message[] = [];
  private flushScheduled = false;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closeListeners: Array<() => void> = [];
  closed = false;

  constructor(
    readonly socket: WebSocket,
    private readonly onFrame: FrameHandler,
    /** A name for error messages: the peer's address or role. */
    readonly peer: string,
  ) {
    socket.binaryType = 'nodebuffer';
    socket.on('message', (data: Buffer) => this.receive(data));
    socket.on('close', () => this.onClose());
    // 'error' is always followed by 'close'; listening keeps it from being thrown as an unhandled event.
    socket.on('error', () => {});
  }

  /** Opens a connection; fails with UNAVAILABLE when nothing accepts it (so the request was never sent). */
  static open(address: string, onFrame: FrameHandler, timeoutMs: number, path = '/'): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(wsUrl(address) + path, { maxPayload: frameBytesMax, perMessageDeflate: false });
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new KvError('UNAVAILABLE', `${address} did not accept a connection within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('open', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new Connection(socket, onFrame, address));
      });
      socket.once('unexpected-response', (_request, response) => {
        clearTimeout(timer);
        socket.terminate();
        const why = response.statusCode === 421 ? 'it is not the server this client meant (a restarted or different cluster?)' : `HTTP ${response.statusCode}`;
        reject(new KvError('UNAVAILABLE', `${address} refused the connection: ${why}`));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new KvError('UNAVAILABLE', `cannot connect to ${address}: ${error.code ?? error.message}`));
      });
    });
  }

  send(message: Message): void {
    if (this.closed) return;
    this.outbox.push(message);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  request<T extends RequestType>(request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]> {
    if (this.closed) {
      return Promise.reject(new KvError('UNAVAILABLE', `connection to ${this.peer} is closed`));
    }
    const id = this.nextId++;
    return new Promise<Results[T]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new KvError('TIMEOUT', `${request.t} to ${this.peer} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject, timer });
      this.send({ ...request, id } as Message);
    });
  }

  reply(id: number, result: unknown): void {
    this.send({ t: 'reply', id, result });
  }

  fail(id: number | null, error: KvError): void {
    const frame: Message = { t: 'error', id, code: error.code, message: error.message };
    if (error.version !== undefined) frame.version = error.version;
    this.send(frame);
  }

  onceClosed(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  /** Drops the connection at once, without the close handshake a hung peer would never answer. */
  terminate(): void {
    this.socket.terminate();
  }

  close(code = 1000, reason = ''): void {
    this.flush();
    this.socket.close(code, reason);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outbox.length === 0 || this.socket.readyState !== WebSocket.OPEN) return;
    const frames = this.outbox;
    this.outbox = [];
    this.socket.send(encodeBatch(frames));
  }

  private receive(data: Buffer): void {
    let frames;
    try {
      frames = decodeBatch(data);
    } catch (error) {
      this.fail(null, new KvError('BAD_REQUEST', (error as Error).message));
      return;
    }
    for (const frame of frames) {
      if (!frame.ok) {
        this.fail(frame.id, new KvError('BAD_REQUEST', frame.reason));
        continue;
      }
      const message = frame.message;
      if (message.t === 'reply') this.settle(message.id, message.result, undefined);
      else if (message.t === 'error') {
        if (message.id === null) continue;
        const code: ErrorCode = isErrorCode(message.code) ? message.code : 'INTERNAL';
        this.settle(message.id, undefined, new KvError(code, message.message, message.version));
      } else this.onFrame(message, this);
    }
  }

  private settle(id: number, result: unknown, error: KvError | undefined): void {
    const pending = this.pending.get(id);
    if (!pending) return; // answered after its timeout: nobody waits for it any more
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (error) pending.reject(error);
    else pending.resolve(result);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new KvError('CONNECTION_LOST', `connection to ${this.peer} closed before request ${id} was answered`));
    }
    this.pending.clear();
    for (const listener of this.closeListeners) listener();
    this.closeListeners = [];
  }
}

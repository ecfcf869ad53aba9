// One WebSocket between two kv processes, seen from either end: frames out are coalesced into messages;
// requests get ids and wait for their reply; everything else goes to the owner's handler. A peer's bad frame is
// answered with BAD_REQUEST and never closes the connection or throws.
//
// Coalescing is Nagle's algorithm at the level of requests. On these machines a message costs as much CPU as
// several requests (a write, a read and a wake-up on each side), so fewer, larger messages are most of the
// throughput. A connection with none of its requests awaiting an answer sends what it has at the end of the
// event-loop turn. One with requests out holds new frames until an answer arrives (the peer is busy with the
// previous message anyway), then sends everything held as one message: with N requests in flight over a
// connection, messages carry about N frames, not a turn's worth. Held frames go out regardless after
// `holdMsMax` (answers may be slow: a write held by a backup freeze) or once `holdFramesMax` are waiting.
import WebSocket from 'ws';
import { decodeBatch, encodeBatch } from './codec.js';
import { KvError, isErrorCode, type ErrorCode } from './errors.js';
import { frameBytesMax, tcpKeepAliveDelayMs } from './limits.js';
import type { Message, RequestOf, RequestType, Results } from './protocol.js';
import { wsUrl } from './address.js';
import { roleOfOrganizationalUnit, type Role } from './roles.js';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { TlsSettings } from './tls.js';

export type FrameHandler = (message: Message, connection: Connection) => void;

interface Pending {
  resolve: (result: unknown) => void;
  reject: (error: KvError) => void;
  /** performance.now() after which the request fails with TIMEOUT. */
  deadline: number;
  /** In a message already sent (not still in the outbox). */
  sent: boolean;
  /** The size of that message: a peer that closes with 1009 refused the first message over its limit. */
  messageBytes: number;
  /** For the TIMEOUT message: what was asked, and how long it was given. */
  type: string;
  timeoutMs: number;
}

/**
 * How often a connection with requests outstanding looks for ones past their deadline. One timer per connection
 * instead of a timer object per request, for requests that nearly all end within a millisecond. A request times
 * out up to this much late.
 */
const deadlineSweepMs = 20;
const holdMsMax = 2;
const holdFramesMax = 256;

/** Why a connection could not be made, in words, with the system's code for a search. */
export function connectFailure(error: NodeJS.ErrnoException): string {
  const hostname = (error as { hostname?: string }).hostname;
  const name = hostname ? `the name ${hostname}` : 'the name';
  switch (error.code) {
    case 'ENOTFOUND':
      return `${name} does not resolve (ENOTFOUND)`;
    case 'EAI_AGAIN':
      return `${name} could not be resolved now: no answer from DNS (EAI_AGAIN)`;
    case 'ECONNREFUSED':
      return 'nothing listens there (ECONNREFUSED)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `no route to that host (${error.code})`;
    case 'ECONNRESET':
      return 'the server reset the connection (ECONNRESET; a server with TLS on resets a client without it)';
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return 'the server does not speak TLS (is TLS off there?)';
    default:
      // Node names some TLS failures only in the message, under EPROTO.
      if (error.code === 'EPROTO' && /wrong version number|packet length too long/.test(error.message)) return 'the server does not speak TLS (is TLS off there?) (EPROTO)';
      return error.code ?? error.message;
  }
}

/**
 * Why the server's certificate was not accepted, in words, or undefined when `error` is not about the server's
 * certificate. These fail for good (UNAUTHENTICATED): trying again meets the same certificate.
 */
export function certificateFailure(error: NodeJS.ErrnoException): string | undefined {
  switch (error.code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return `its certificate is not signed by the CA of --tls-ca (another cluster's CA?) (${error.code})`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `its certificate does not name the address dialled (reissue it with that --host) (${error.code})`;
    case 'ERR_KV_SERVER_ROLE':
      return error.message;
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return `its certificate is outside its validity period (${error.code})`;
    default:
      return error.code?.startsWith('ERR_SSL_') && /alert/i.test(error.message) ? `the TLS handshake failed: ${error.message.replace(/^.*routines:+/, '')}` : undefined;
  }
}

/** Undefined when the server's certificate has `role`, else the error the TLS handshake fails with. */
function checkRole(certificate: PeerCertificate, role: Role): Error | undefined {
  const unit = certificate.subject?.OU;
  const found = roleOfOrganizationalUnit(Array.isArray(unit) ? unit[0] : unit);
  if (found === role) return undefined;
  return Object.assign(new Error(`its certificate is a ${found ?? 'non-kv'} one, not a ${role}'s`), { code: 'ERR_KV_SERVER_ROLE' });
}

/** The reason a server gave when it refused the WebSocket upgrade (the body of its answer), bounded. */
const refusalBytesMax = 1024;

export class Connection {
  private outbox: Message[] = [];
  private flushScheduled = false;
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<number, Pending>();
  /** Requests sent and not yet answered (or timed out). */
  private awaiting = 0;
  private nextId = 1;
  private sweeper: NodeJS.Timeout | undefined;
  private closeListeners: Array<() => void> = [];
  private watchTimer: NodeJS.Timeout | undefined;
  closed = false;

  constructor(
    readonly socket: WebSocket,
    private readonly onFrame: FrameHandler,
    /** A name for error messages: the peer's address or role. */
    readonly peer: string,
    /** The peer's role from its certificate, fixed when the connection was accepted; undefined with TLS off. */
    readonly role?: Role,
  ) {
    socket.binaryType = 'nodebuffer';
    socket.on('message', (data: Buffer) => this.receive(data));
    socket.on('close', (code) => {
      clearInterval(this.watchTimer);
      this.onClose(code);
    });
    // 'error' is always followed by 'close'; listening keeps it from being thrown as an unhandled event.
    socket.on('error', () => {});
  }

  /**
   * Opens a connection; fails with UNAVAILABLE when nothing accepts it (so the request was never sent), and with
   * UNAUTHENTICATED when TLS is on and either end's certificate is refused. With `tls`, over wss:// showing this
   * process's certificate and accepting only a server certificate of the cluster CA that names `address` and,
   * given `serverRole`, has that role: a client's or an admin's certificate cannot pose as a cluster member.
   */
  static open(address: string, onFrame: FrameHandler, timeoutMs: number, path = '/', tls?: TlsSettings, serverRole?: Role): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(wsUrl(address, tls !== undefined) + path, {
        maxPayload: frameBytesMax,
        perMessageDeflate: false,
        ...(tls && { ca: tls.ca, ...(tls.cert && { cert: tls.cert, key: tls.key }) }),
        ...(tls && serverRole && { checkServerIdentity: (host: string, certificate: PeerCertificate) => checkServerIdentity(host, certificate) ?? checkRole(certificate, serverRole) }),
        ...(tls?.token && { headers: { authorization: `Bearer ${tls.token}` } }),
      });
      socket.once('upgrade', (response) => response.socket.setKeepAlive(true, tcpKeepAliveDelayMs));
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
        const status = response.statusCode ?? 0;
        if (status !== 401 && status !== 403) {
          socket.terminate();
          const why = status === 421 ? 'it is not the server this client meant (a restarted or different cluster?)' : `HTTP ${status}`;
          reject(new KvError('UNAVAILABLE', `${address} refused the connection: ${why}`));
          return;
        }
        // The server says why in the body (listen.ts): read a little of it, then give up on the socket.
        let body = '';
        const done = () => {
          socket.terminate();
          reject(new KvError('UNAUTHENTICATED', `${address} refused this process's credential: ${body.trim() || `HTTP ${status}`}`));
        };
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body = (body + chunk).slice(0, refusalBytesMax)));
        response.once('end', done);
        response.once('error', done);
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const certificate = certificateFailure(error);
        if (certificate) reject(new KvError('UNAUTHENTICATED', `${address} is not trusted: ${certificate}`));
        else reject(new KvError('UNAVAILABLE', `cannot connect to ${address}: ${connectFailure(error)}`));
      });
    });
  }

  send(message: Message): void {
    if (this.closed) return;
    this.outbox.push(message);
    if (this.flushScheduled) return;
    if (this.awaiting === 0 || this.outbox.length >= holdFramesMax) this.scheduleFlush();
    else this.holdTimer ??= setTimeout(() => this.flush(), holdMsMax);
  }

  /** Sends the outbox at the end of this event-loop turn, so that what this turn still adds goes with it. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /**
   * Sends `request` and resolves with the answer. The request object itself becomes the frame: the connection sets
   * its id (copying it would cost more than the rest of sending it), so each call needs an object of its own.
   */
  request<T extends RequestType>(request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]> {
    if (this.closed) {
      return Promise.reject(new KvError('UNAVAILABLE', `connection to ${this.peer} is closed`));
    }
    const id = this.nextId++;
    return new Promise<Results[T]>((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject, deadline, sent: false, messageBytes: 0, type: request.t, timeoutMs });
      this.sweeper ??= setInterval(() => this.sweep(), deadlineSweepMs);
      const frame = request as { t: T } & RequestOf<T> & { id: number };
      frame.id = id;
      this.send(frame as Message);
    });
  }

  /** Fails the requests past their deadline; stops looking when none are outstanding. */
  private sweep(): void {
    const now = performance.now();
    for (const [id, pending] of this.pending) {
      if (pending.deadline > now) continue;
      this.forget(id, pending);
      pending.reject(new KvError('TIMEOUT', `${pending.type} to ${this.peer} got no answer within ${pending.timeoutMs} ms`));
    }
    if (this.pending.size === 0) this.stopSweeping();
  }

  private stopSweeping(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
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

  /**
   * Expects to hear from the peer: a WebSocket ping every `intervalMs` (the peer's ws answers it), and the
   * connection is terminated (its close listeners run, so its owner reconnects) when nothing, pong or message,
   * has come for `silenceMs`. A peer whose host died sends no FIN: without this the socket stays open for good.
   */
  watch(intervalMs: number, silenceMs: number, onSilent?: (silentMs: number) => void): void {
    let heardAt = performance.now();
    let tickAt = heardAt;
    const heard = () => (heardAt = performance.now());
    this.socket.on('pong', heard);
    this.socket.on('message', heard);
    clearInterval(this.watchTimer);
    this.watchTimer = setInterval(() => {
      const now = performance.now();
      // A tick this late means this process stalled (paused, swapped, a long GC): the silence was its own, and
      // what the peer sent meanwhile is still unread in the socket. It gets a fresh window, as after any answer.
      if (now - tickAt > 2 * intervalMs) heardAt = now;
      tickAt = now;
      const silentMs = now - heardAt;
      if (silentMs > silenceMs) {
        clearInterval(this.watchTimer);
        onSilent?.(silentMs);
        this.terminate();
        return;
      }
      try {
        this.socket.ping();
      } catch {
        // not open any more: its close is on its way
      }
    }, intervalMs);
    this.watchTimer.unref();
  }

  close(code = 1000, reason = ''): void {
    this.flush();
    this.socket.close(code, reason);
  }

  private flush(): void {
    this.flushScheduled = false;
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (this.outbox.length === 0 || this.socket.readyState !== WebSocket.OPEN) return;
    const frames = this.outbox;
    this.outbox = [];
    const message = encodeBatch(frames);
    if (message.length > frameBytesMax) return this.sendSplit(frames);
    this.markSent(frames, message.length);
    this.socket.send(message);
  }

  private markSent(frames: readonly Message[], messageBytes: number): void {
    for (const frame of frames) {
      const pending = this.ownRequest(frame);
      if (pending && !pending.sent) {
        pending.sent = true;
        pending.messageBytes = messageBytes;
        this.awaiting++;
      }
    }
  }

  private ownRequest(frame: Message): Pending | undefined {
    return 'id' in frame && frame.t !== 'reply' && frame.t !== 'error' ? this.pending.get(frame.id as number) : undefined;
  }

  /**
   * The rare batch over the peer's message limit (which would close the connection with 1009, failing everything
   * on it, and a retried write would do it again): its frames go in messages that fit, and a frame too big on its
   * own is answered here, at once: our request fails with BAD_REQUEST, our reply becomes an error answer. Anything
   * else that big cannot be answered, so the connection closes as the peer would have closed it.
   */
  private sendSplit(frames: readonly Message[]): void {
    let batch: Message[] = [];
    let bytes = 0;
    const sendBatch = () => {
      if (batch.length === 0) return;
      const message = encodeBatch(batch);
      this.markSent(batch, message.length);
      this.socket.send(message);
      batch = [];
      bytes = 0;
    };
    for (let frame of frames) {
      // One frame's own batch is at least as big as its share of a shared one, so the sums below never undercount.
      let size = encodeBatch([frame]).length;
      if (size > frameBytesMax) {
        const tooBig = `a message of ${size} bytes, over the limit of ${frameBytesMax}`;
        const pending = this.ownRequest(frame);
        if (pending) {
          this.forget((frame as { id: number }).id, pending);
          pending.reject(new KvError('BAD_REQUEST', `the ${frame.t} would be ${tooBig}`));
          continue;
        }
        if (frame.t !== 'reply') {
          this.socket.close(1009, 'a frame over the message limit');
          return;
        }
        frame = { t: 'error', id: frame.id, code: 'BAD_REQUEST', message: `the answer would be ${tooBig}` };
        size = encodeBatch([frame]).length;
      }
      if (bytes + size > frameBytesMax) sendBatch();
      batch.push(frame);
      bytes += size;
    }
    sendBatch();
  }

  private forget(id: number, pending: Pending): void {
    this.pending.delete(id);
    if (pending.sent) this.awaiting--;
  }

  private receive(data: Buffer): void {
    let frames;
    try {
      frames = decodeBatch(data);
    } catch (error) {
      this.fail(null, new KvError('BAD_REQUEST', (error as Error).message));
      return;
    }
    let answered = false;
    for (const frame of frames) {
      if (!frame.ok) {
        this.fail(frame.id, new KvError('BAD_REQUEST', frame.reason));
        continue;
      }
      const message = frame.message;
      if (message.t === 'reply') {
        answered = true;
        this.settle(message.id, message.result, undefined);
      } else if (message.t === 'error') {
        answered = true;
        if (message.id === null) continue;
        const code: ErrorCode = isErrorCode(message.code) ? message.code : 'INTERNAL';
        this.settle(message.id, undefined, new KvError(code, message.message, message.version));
      } else this.onFrame(message, this);
    }
    // The held frames go now, with those the answered requests' callers send in reaction (in this turn).
    if (answered) this.scheduleFlush();
  }

  private settle(id: number, result: unknown, error: KvError | undefined): void {
    const pending = this.pending.get(id);
    if (!pending) return; // answered after its timeout: nobody waits for it any more
    this.forget(id, pending);
    if (error) pending.reject(error);
    else pending.resolve(result);
  }

  private onClose(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.stopSweeping();
    clearTimeout(this.holdTimer);
    this.awaiting = 0;
    // 1009: a message was over the limit of one end (a peer with a smaller limit than ours). The peer read nothing
    // after the first such message; the biggest message out is over the limit too, so its requests fail for good
    // rather than being retried into the same wall. The others were lost with the connection, as in any drop.
    let refusedBytes = Infinity;
    if (code === 1009) refusedBytes = [...this.pending.values()].reduce((most, p) => Math.max(most, p.messageBytes), 0);
    for (const [id, pending] of this.pending) {
      pending.reject(
        pending.sent && pending.messageBytes >= refusedBytes
          ? new KvError('BAD_REQUEST', `${this.peer} closed the connection (1009): the ${pending.type} was in a message of ${pending.messageBytes} bytes, over its limit`)
          : new KvError('CONNECTION_LOST', `connection to ${this.peer} closed before request ${id} was answered`),
      );
    }
    this.pending.clear();
    for (const listener of this.closeListeners) listener();
    this.closeListeners = [];
  }
}

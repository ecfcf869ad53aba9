// The coordinator's only way to etcd: a small client over etcd's JSON gateway (POST /v3/..., int64 as strings,
// bytes as base64) with Node's fetch. Not the etcd3 package: it reports a lost lease late, hides when a keep-alive
// was sent, cannot make a watch require a leader and may re-send a committed txn. What this one promises:
// - Every call has a deadline; a black-holed connection fails within it.
// - A request goes to the next endpoint only when it provably never reached etcd (refused, unreachable, DNS) or
//   etcd refused it for having no leader; after a timeout or a broken-off answer the call fails UNCERTAIN and is
//   not sent again, so a committed txn is never applied twice. Reads (range, status, starting a watch) are safe to
//   repeat and move on to the next endpoint within the same deadline.
// - Every call requires a leader. Found on etcd 3.4.23: the gateway forwards `Grpc-Metadata-hasleader: true` as the
//   gRPC metadata `hasleader`, and a member cut off from its quorum then answers range (serializable too), put,
//   txn, lease and watch at once with HTTP 503 "etcdserver: no leader" (without the header a range waits 5 s for
//   "request timed out", a serializable range returns stale data and a watch hangs). That check runs before the
//   request reaches the server, so "no leader" means not applied. A running watch on a member that loses its
//   leader is ended by etcd after a few election timeouts (the gateway just closes the stream: UNREACHABLE). Status is the one call sent without it: it is
//   how a person or test sees that a member has no leader (leader '0').
// Gateway paths on 3.4.23: /v3/kv/{range,put,deleterange,txn}, /v3/lease/{grant,keepalive,revoke}, /v3/watch,
// /v3/maintenance/status (/v3beta is an alias; /v3alpha is gone). Zero values are left out of answers (a PUT event
// has no type, a lease keep-alive of an unknown or expired lease answers without TTL).

export type Bytes = Buffer | string;
export interface KeyValue { key: Buffer; value: Buffer; createRevision: number; modRevision: number; version: number; lease: string /* '0' none */ }
export interface Header { revision: number; raftTerm: number; memberId: string }
export type Compare = {
  key: Bytes; rangeEnd?: Bytes; target: 'CREATE' | 'MOD' | 'VERSION' | 'VALUE'; result: 'EQUAL' | 'NOT_EQUAL' | 'GREATER' | 'LESS';
  createRevision?: number; modRevision?: number; version?: number; value?: Bytes;
};
export type Op =
  | { put: { key: Bytes; value: Bytes; lease?: string } }
  | { range: { key: Bytes; rangeEnd?: Bytes; limit?: number } }
  | { deleteRange: { key: Bytes; rangeEnd?: Bytes } };
export type TxnResponse = { range?: { kvs: KeyValue[]; count: number }; put?: Record<string, never>; deleteRange?: { deleted: number } };
export type WatchEvent = { type: 'PUT' | 'DELETE'; kv: KeyValue; prevKv?: KeyValue };

export type EtcdErrorCode = 'UNREACHABLE' | 'UNCERTAIN' | 'NO_LEADER' | 'LEASE_NOT_FOUND' | 'COMPACTED' | 'REFUSED';
export class EtcdError extends Error {
  constructor(readonly code: EtcdErrorCode, readonly endpoint: string, message: string) {
    super(message);
    this.name = 'EtcdError';
  }
}

/** etcd's range end for all keys that start with `prefix` (the empty prefix: every key). */
export const prefixEnd = (prefix: Bytes): Buffer => {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
};

type Wire = Record<string, any>; // the gateway's JSON, read field by field
const b64 = (bytes: Bytes | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString('base64'));
const int = (value: number | undefined) => (value === undefined ? undefined : String(value));
const num = (value: unknown) => Number(value ?? 0);
const header = (h: Wire | undefined): Header => ({ revision: num(h?.revision), raftTerm: num(h?.raft_term), memberId: String(h?.member_id ?? '0') });
const keyValue = (kv: Wire): KeyValue => ({
  key: Buffer.from(kv.key ?? '', 'base64'), value: Buffer.from(kv.value ?? '', 'base64'), createRevision: num(kv.create_revision),
  modRevision: num(kv.mod_revision), version: num(kv.version), lease: String(kv.lease ?? '0'),
});
const rangeEndOf = (key: Bytes, o: { rangeEnd?: Bytes; prefix?: boolean }) => b64(o.prefix ? prefixEnd(key) : o.rangeEnd);

const compareField = { CREATE: 'create_revision', MOD: 'mod_revision', VERSION: 'version', VALUE: 'value' } as const;
const wireCompare = (c: Compare) => ({
  key: b64(c.key), range_end: b64(c.rangeEnd), target: c.target, result: c.result,
  [compareField[c.target]]: c.target === 'VALUE' ? b64(c.value ?? '') : int({ CREATE: c.createRevision, MOD: c.modRevision, VERSION: c.version }[c.target] ?? 0),
});
const wireOp = (op: Op) =>
  'put' in op ? { request_put: { key: b64(op.put.key), value: b64(op.put.value), lease: op.put.lease } }
  : 'range' in op ? { request_range: { key: b64(op.range.key), range_end: b64(op.range.rangeEnd), limit: int(op.range.limit) } }
  : { request_delete_range: { key: b64(op.deleteRange.key), range_end: b64(op.deleteRange.rangeEnd) } };
const txnResponse = (r: Wire): TxnResponse =>
  r.response_range ? { range: { kvs: (r.response_range.kvs ?? []).map(keyValue), count: num(r.response_range.count) } }
  : r.response_put ? { put: {} }
  : { deleteRange: { deleted: num(r.response_delete_range?.deleted) } };

// Failures of connect or name lookup: the request was never written to a socket.
const neverSentCodes = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const causeCodes = (error: unknown): string[] => {
  const cause = (error as { cause?: { code?: string; errors?: Array<{ code?: string }> } }).cause;
  return [cause?.code, ...(cause?.errors ?? []).map((e) => e.code)].filter((c): c is string => typeof c === 'string');
};
const didNotAnswer = (endpoint: string, ms: number) => new EtcdError('UNCERTAIN', endpoint, `etcd ${endpoint} did not answer within ${Math.round(ms)} ms`);

function transportError(endpoint: string, error: unknown, ms: number, timedOut: boolean): EtcdError {
  if (timedOut || (error instanceof Error && error.name === 'TimeoutError')) return didNotAnswer(endpoint, ms);
  const codes = causeCodes(error);
  const unsent = codes.find((c) => neverSentCodes.has(c));
  if (unsent) return new EtcdError('UNREACHABLE', endpoint, `etcd ${endpoint} is unreachable (${unsent})`);
  const why = codes[0] ?? (error instanceof Error ? error.message : String(error));
  return new EtcdError('UNCERTAIN', endpoint, `etcd ${endpoint} broke off the request (${why}); it may or may not have been applied`);
}

/** An error etcd answered with, as `{error, message, code}` (unary) or `{error: {message, grpc_code}}` (streams). */
function answerError(endpoint: string, status: number, body: Wire | undefined, text: string): EtcdError {
  const error = body?.error;
  const message = String((typeof error === 'object' ? error?.message : body?.message ?? error) ?? (text.trim() || `HTTP ${status}`));
  const code: EtcdErrorCode = /no leader/.test(message) ? 'NO_LEADER'
    : /compacted/.test(message) ? 'COMPACTED'
    : /lease not found/.test(message) ? 'LEASE_NOT_FOUND'
    : /timed out|leader changed|stopped/.test(message) ? 'UNCERTAIN' // proposed, maybe committed
    : 'REFUSED';
  return new EtcdError(code, endpoint, `etcd ${endpoint} answered: ${message.replace(/\s+/g, ' ')}`);
}

const parse = (text: string): Wire | undefined => {
  try {
    return JSON.parse(text) as Wire;
  } catch {
    return undefined;
  }
};

/** Splits a gateway stream (one JSON object per line) into objects. */
async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<Wire | undefined> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
      const line = buffered.slice(0, at).trim();
      buffered = buffered.slice(at + 1);
      if (line !== '') yield parse(line);
    }
  }
}

type Attempt = (endpoint: string, ms: number) => Promise<unknown>;

export class EtcdClient {
  readonly endpoints: string[];
  private readonly requestTimeoutMs: number;
  private current = 0; // the endpoint that last worked (or the next one after a failure)

  constructor(endpoints: string[], options: { requestTimeoutMs?: number } = {}) {
    if (endpoints.length === 0) throw new Error('EtcdClient needs at least one endpoint');
    this.endpoints = endpoints.map((e) => e.replace(/\/+$/, ''));
    this.requestTimeoutMs = options.requestTimeoutMs ?? 2000;
  }

  async range(key: Bytes, options: { rangeEnd?: Bytes; prefix?: boolean; limit?: number; revision?: number; serializable?: boolean } = {}) {
    const r = await this.call('/v3/kv/range', {
      key: b64(key), range_end: rangeEndOf(key, options), limit: int(options.limit), revision: int(options.revision), serializable: options.serializable,
    }, true);
    return { header: header(r.header), kvs: ((r.kvs ?? []) as Wire[]).map(keyValue), count: num(r.count) };
  }

  async put(key: Bytes, value: Bytes, options: { lease?: string } = {}): Promise<Header> {
    return header((await this.call('/v3/kv/put', { key: b64(key), value: b64(value), lease: options.lease }, false)).header);
  }

  async deleteRange(key: Bytes, options: { rangeEnd?: Bytes; prefix?: boolean } = {}) {
    const r = await this.call('/v3/kv/deleterange', { key: b64(key), range_end: rangeEndOf(key, options) }, false);
    return { header: header(r.header), deleted: num(r.deleted) };
  }

  async txn(t: { compare: Compare[]; success: Op[]; failure: Op[] }) {
    const r = await this.call('/v3/kv/txn', { compare: t.compare.map(wireCompare), success: t.success.map(wireOp), failure: t.failure.map(wireOp) }, false);
    return { header: header(r.header), succeeded: r.succeeded === true, responses: ((r.responses ?? []) as Wire[]).map(txnResponse) };
  }

  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const r = await this.call('/v3/lease/grant', { TTL: int(ttlSeconds) }, false);
    return { id: String(r.ID), ttl: num(r.TTL) };
  }

  /** One keep-alive. A caller that counts from it should take its clock before the call: that is when it was sent. */
  async leaseKeepAlive(id: string): Promise<{ ttl: number }> {
    const r = await this.call('/v3/lease/keepalive', { ID: id }, false);
    const ttl = num(r.result?.TTL);
    if (ttl <= 0) throw new EtcdError('LEASE_NOT_FOUND', this.endpoints[this.current]!, `etcd lease ${id} is gone (expired or revoked)`);
    return { ttl };
  }

  async leaseRevoke(id: string): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id }, false);
  }

  async status(endpoint: string): Promise<{ leader: string; raftTerm: number; version: string; memberId: string }> {
    const r = (await this.attemptJson(endpoint.replace(/\/+$/, ''), '/v3/maintenance/status', {}, this.requestTimeoutMs, false)) as Wire;
    return { leader: String(r.leader ?? '0'), raftTerm: num(r.raftTerm), version: String(r.version ?? ''), memberId: header(r.header).memberId };
  }

  /** Streams events of key (or prefix) from startRevision (history if older than now) until signal aborts or the stream fails (rejects then). */
  async watch(key: Bytes, options: { prefix?: boolean; startRevision?: number; signal: AbortSignal },
    onEvents: (events: WatchEvent[], header: Header) => void): Promise<void> {
    const request = { create_request: { key: b64(key), range_end: rangeEndOf(key, options), start_revision: int(options.startRevision), prev_kv: true } };
    let stream: AsyncGenerator<Wire | undefined> | undefined;
    let endpoint = '';
    try {
      // Only the start is bounded (and may move on to another endpoint): afterwards the stream lasts as long as it may.
      await this.tryEndpoints(true, async (ep, ms) => {
        if (options.signal.aborted) return;
        const first = new AbortController();
        const timer = setTimeout(() => first.abort(), Math.max(1, Math.ceil(ms)));
        try {
          const response = await fetch(ep + '/v3/watch', this.init(request, AbortSignal.any([options.signal, first.signal]), true));
          if (!response.ok || !response.body) throw answerError(ep, response.status, parse(await response.text()), '');
          const s = lines(response.body);
          const created = await s.next();
          if (!created.done) this.checkWatch(ep, created.value);
          [stream, endpoint] = [s, ep];
        } catch (error) {
          if (error instanceof EtcdError || options.signal.aborted) throw error;
          throw transportError(ep, error, ms, first.signal.aborted);
        } finally {
          clearTimeout(timer);
        }
      });
      if (!stream) return;
      for await (const message of stream) {
        const result = this.checkWatch(endpoint, message);
        const events = (result.events ?? []) as Wire[];
        if (events.length === 0) continue;
        onEvents(events.map((e) => ({ type: e.type === 'DELETE' ? 'DELETE' : 'PUT', kv: keyValue(e.kv ?? {}), ...(e.prev_kv ? { prevKv: keyValue(e.prev_kv) } : {}) })), header(result.header));
      }
      if (!options.signal.aborted) throw new EtcdError('UNREACHABLE', endpoint, `etcd ${endpoint} ended the watch stream`);
    } catch (error) {
      if (options.signal.aborted) return;
      if (error instanceof EtcdError) throw error;
      if (endpoint === '') throw error;
      throw new EtcdError('UNREACHABLE', endpoint, `etcd ${endpoint} broke off the watch stream (${causeCodes(error)[0] ?? String(error)})`);
    } finally {
      void stream?.return(undefined).catch(() => {});
    }
  }

  /** A watch message's result, or the error it carries (no leader, a compacted start revision, a cancel). */
  private checkWatch(endpoint: string, message: Wire | undefined): Wire {
    if (!message || message.error || !message.result) throw answerError(endpoint, 200, message, JSON.stringify(message));
    const result = message.result as Wire;
    if (num(result.compact_revision) > 0) {
      throw new EtcdError('COMPACTED', endpoint, `etcd ${endpoint} compacted the history this watch starts in (compacted up to revision ${String(result.compact_revision)})`);
    }
    if (result.canceled) throw new EtcdError('REFUSED', endpoint, `etcd ${endpoint} canceled the watch: ${String(result.cancel_reason ?? 'no reason given')}`);
    return result;
  }

  private call(path: string, body: unknown, idempotent: boolean): Promise<Wire> {
    return this.tryEndpoints(idempotent, (endpoint, ms) => this.attemptJson(endpoint, path, body, ms, true)) as Promise<Wire>;
  }

  private init(body: unknown, signal: AbortSignal, requireLeader: boolean): RequestInit {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (requireLeader) headers['grpc-metadata-hasleader'] = 'true';
    return { method: 'POST', headers, body: JSON.stringify(body), signal };
  }

  private async attemptJson(endpoint: string, path: string, body: unknown, ms: number, requireLeader: boolean): Promise<unknown> {
    const init = this.init(body, AbortSignal.timeout(Math.max(1, Math.ceil(ms))), requireLeader);
    let response: Response;
    let text: string;
    try {
      response = await fetch(endpoint + path, init);
      text = await response.text();
    } catch (error) {
      throw transportError(endpoint, error, ms, false);
    }
    const parsed = parse(text);
    if (!response.ok || !parsed || typeof parsed.error === 'object') throw answerError(endpoint, response.status, parsed, text);
    return parsed;
  }

  /**
   * Runs `attempt` on the endpoints in turn from the current one, within one deadline. It moves on only after a
   * failure that proves the request was not applied, or after any failure when `idempotent`; an idempotent attempt
   * gets its share of the time left, so that one black hole cannot use up the whole deadline.
   */
  private async tryEndpoints(idempotent: boolean, attempt: Attempt): Promise<unknown> {
    const deadline = performance.now() + this.requestTimeoutMs;
    const failures: EtcdError[] = [];
    const first = this.current;
    for (let n = 0; n < this.endpoints.length; n++) {
      const index = (first + n) % this.endpoints.length;
      const left = deadline - performance.now();
      if (left <= 0) break;
      try {
        const result = await attempt(this.endpoints[index]!, idempotent ? left / (this.endpoints.length - n) : left);
        this.current = index;
        return result;
      } catch (error) {
        // An answer of etcd's own (refused, compacted, no such lease) would be the same from any member.
        if (!(error instanceof EtcdError) || !['UNREACHABLE', 'NO_LEADER', 'UNCERTAIN'].includes(error.code)) throw error;
        this.current = (index + 1) % this.endpoints.length;
        failures.push(error);
        if (error.code === 'UNCERTAIN' && !idempotent) throw error;
      }
    }
    const worst = failures.find((f) => f.code === 'NO_LEADER') ?? failures.find((f) => f.code !== 'UNREACHABLE') ?? failures[0];
    if (!worst) throw didNotAnswer(this.endpoints[this.current]!, this.requestTimeoutMs);
    if (failures.length === 1) throw worst;
    throw new EtcdError(worst.code, worst.endpoint, failures.map((f) => f.message).join('; '));
  }
}

// A Jepsen client process: logical threads that each run one operation at a time on random keys, for a fixed
// duration, and record every operation (invocation, completion, outcome) as one JSON line of `Op`.
//
//   node dist/test/jepsen/worker.js '{"coordinator":"127.0.0.1:1982","space":"jepsen","keys":["k0","k1"],...}'
//
// It is a separate process so that its clock, its client and its event loop are independent of the test that
// injects faults: the test process pausing on a nemesis step cannot delay (and so hide) a client's operation.
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Client, KvError, type Attrs } from '../../shared/client.js';
import { findServer, findSpace } from '../../shared/config.js';
import { partitionOf } from '../../shared/partition.js';
import { loadTls, type TlsFiles } from '../../shared/tls.js';
import { waitFor } from '../helpers/wait-for.js';
import type { KeyState, Op, OpKind } from './history.js';

export interface OpMix {
  put: number;
  get: number;
  cond_put: number;
  add: number;
}

export interface WorkerArgs {
  coordinator: string;
  space: string;
  keys: string[];
  threads: number;
  /** Thread i records as process `processBase + i`; bases must keep every thread of the run distinct. */
  processBase: number;
  durationMs: number;
  seed: number;
  /** Relative weights. */
  mix?: OpMix;
  /** The client's per-operation deadline, retries included. */
  timeoutMs: number;
  /** A file to write the history to; stdout if absent. */
  out?: string;
  /** TLS on: the client's certificate (or token) and the cluster CA, as files (shared/tls.ts). */
  tls?: TlsFiles;
  /** Each thread waits up to this long (random) between operations, so the history stays small enough to check. */
  thinkMs?: number;
  /**
   * After an operation that did not succeed, the thread waits about this long (half to one and a half times)
   * before the next. While no daemon is available for a partition the client fails at once, and a thread that
   * retried at full speed would write hundreds of indeterminate operations a second: each is an operation the
   * checker must consider taking effect at any later time, and a few hundred of them on a key make its search
   * intractable. A real client backs off too.
   */
  errorBackoffMs?: number;
  /** Connect, say ready on stderr, then wait for a line on stdin before starting the clock. */
  waitForGo?: boolean;
  /**
   * Once this file exists the threads end their runs (each after its operation in flight): a test stops its
   * workload when its faults are over, so `durationMs` is only an upper bound, not a guess at how long they take.
   */
  stopFile?: string;
}

export const defaultMix: OpMix = { put: 25, get: 25, cond_put: 25, add: 25 };

/** mulberry32: a small seeded PRNG, so a run's choice of operations is reproducible from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const now = (): number => performance.timeOrigin + performance.now();

/**
 * How far this process's `now()` is from the wall clock at this moment. Processes started at different times differ
 * here (the wall clock may be stepped or slewed meanwhile: seen at 500 ppm on these machines), so times from two
 * processes are compared only after converting by their offsets, taken at about the same moment.
 */
export const clockOffsetMs = (): number => now() - Date.now();

/** Values are unique across a run: a thread's values are process * 1e6 + its counter. */
const valueSpan = 1_000_000;

/**
 * How an error maps to an outcome. Reads have no effect, so any error is a `fail`. A write is a `fail` only when
 * kv refused it before it could run; everything else may have been applied (the client reports UNAVAILABLE for a
 * write whose connection dropped after it was sent, and retries an idempotent put after a dropped connection),
 * so it is `info`: indeterminate.
 */
export function outcomeOf(kind: OpKind, error: unknown): { outcome: 'fail' | 'info'; error: string } {
  const code = error instanceof KvError ? error.code : 'NOT_A_KV_ERROR';
  if (kind === 'get') return { outcome: 'fail', error: code };
  const definitelyNotApplied = code === 'READ_ONLY' || code === 'BAD_REQUEST' || code === 'NO_SUCH_SPACE';
  return { outcome: definitelyNotApplied ? 'fail' : 'info', error: code };
}

export const stateOf = (attrs: Attrs | undefined): KeyState => {
  const v = attrs?.v;
  const c = attrs?.c;
  return { v: typeof v === 'number' ? v : null, c: typeof c === 'number' ? c : 0 };
};

/** Runs one operation against kv and fills in its completion. */
export async function execute(client: Client, space: string, op: Op): Promise<Op> {
  try {
    switch (op.kind) {
      case 'put':
        await client.put(space, op.key, { v: op.value! });
        op.result = null;
        break;
      case 'cond_put':
        try {
          await client.condPut(space, op.key, { v: op.expect! }, { v: op.value! });
          op.result = true;
        } catch (error) {
          if (!(error instanceof KvError && error.code === 'CONDITION_FAILED')) throw error;
          op.result = false;
        }
        break;
      case 'add': {
        const attrs = await client.atomicAdd(space, op.key, { c: op.delta! });
        op.result = stateOf(attrs).c;
        break;
      }
      case 'get':
        op.result = stateOf(await client.get(space, op.key));
        break;
    }
    op.outcome = 'ok';
  } catch (error) {
    const { outcome, error: code } = outcomeOf(op.kind, error);
    op.outcome = outcome;
    op.error = code;
  }
  op.end = now();
  return op;
}

class Thread {
  private counter = 0;
  /** What this thread last saw (or made) `v` to be, per key: what its cond_puts expect. */
  private readonly belief = new Map<string, number>();
  /** Values this thread wrote, per key, most recent last: a cond_put's expectation when it has no belief. */
  private readonly written = new Map<string, number[]>();
  inFlight: Op | undefined;

  constructor(
    readonly process: number,
    private readonly args: WorkerArgs,
    private readonly random: () => number,
    private readonly record: (op: Op) => void,
  ) {}

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  private fresh(): number {
    this.counter++;
    if (this.counter >= valueSpan) throw new Error('a thread ran out of unique values');
    return this.process * valueSpan + this.counter;
  }

  private nextOp(): Op {
    const mix = this.args.mix ?? defaultMix;
    const key = this.pick(this.args.keys);
    const total = mix.put + mix.get + mix.cond_put + mix.add;
    let roll = this.random() * total;
    let kind: OpKind = 'get';
    for (const k of ['put', 'get', 'cond_put', 'add'] as const) {
      if (roll < mix[k]) {
        kind = k;
        break;
      }
      roll -= mix[k];
    }
    const base = { process: this.process, key, start: 0, end: 0, outcome: 'info' as const };
    if (kind === 'cond_put') {
      const recent = this.written.get(key) ?? [];
      const expect = this.belief.get(key) ?? (recent.length > 0 ? this.pick(recent) : undefined);
      // Nothing known of this key yet: a put gives the next cond_put something to expect.
      if (expect === undefined) kind = 'put';
      else return { ...base, kind, expect, value: this.fresh() };
    }
    if (kind === 'put') return { ...base, kind, value: this.fresh() };
    if (kind === 'add') return { ...base, kind, delta: 1 };
    return { ...base, kind: 'get' };
  }

  private learn(op: Op): void {
    if (op.outcome !== 'ok') {
      // An indeterminate write may have applied: what this thread believed may be stale either way.
      if (op.outcome === 'info' && (op.kind === 'put' || op.kind === 'cond_put')) this.belief.delete(op.key);
      return;
    }
    if (op.kind === 'get') {
      const v = (op.result as KeyState).v;
      if (v === null) this.belief.delete(op.key);
      else this.belief.set(op.key, v);
    } else if (op.kind === 'put' || (op.kind === 'cond_put' && op.result === true)) {
      this.belief.set(op.key, op.value!);
      const recent = this.written.get(op.key) ?? [];
      recent.push(op.value!);
      if (recent.length > 8) recent.shift();
      this.written.set(op.key, recent);
    }
  }

  /**
   * Whether the client's config has an available daemon for this operation (the chain's head for a write, its
   * tail for a read). When it has none, the client refuses at once with UNAVAILABLE, which for a write is
   * recorded as indeterminate (the same code also means "sent, then the connection dropped"): the thread waits
   * instead of issuing an operation known to go nowhere. After a coordinator restart every daemon is not
   * available until it registers again, and the refusals would otherwise fill the history with indeterminate
   * writes that cost the checker far more than they tell.
   */
  private routable(client: Client, op: Op): boolean {
    const config = client.currentConfig;
    const space = findSpace(config, this.args.space);
    if (!space) return true; // the client refreshes and finds out
    const chain = space.partitions[partitionOf(op.key, space.partitions.length)]?.chain ?? [];
    const serverId = op.kind === 'get' ? chain[chain.length - 1] : chain[0];
    return serverId !== undefined && findServer(config, serverId)?.state === 'available';
  }

  async run(client: Client, until: { deadline: number }): Promise<void> {
    const thinkMs = this.args.thinkMs ?? 0;
    const backoffMs = this.args.errorBackoffMs ?? 100;
    while (now() < until.deadline) {
      const op = this.nextOp();
      if (!this.routable(client, op)) {
        await new Promise((resolve) => setTimeout(resolve, backoffMs * (0.5 + this.random())));
        continue;
      }
      op.start = now();
      this.inFlight = op;
      await execute(client, this.args.space, op);
      this.inFlight = undefined;
      this.record(op);
      this.learn(op);
      const pauseMs = op.outcome === 'ok' ? this.random() * thinkMs : backoffMs * (0.5 + this.random());
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}

/** Resolves when a line arrives on stdin (the harness starts every worker at once, once the cluster is up). */
function goSignal(timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no go signal on stdin within ${timeoutMs} ms`)), timeoutMs);
    process.stdin.setEncoding('utf8');
    const onData = (chunk: string) => {
      if (!chunk.includes('\n')) return;
      clearTimeout(timer);
      process.stdin.off('data', onData);
      process.stdin.pause();
      resolve();
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', () => reject(new Error('stdin closed before the go signal')));
  });
}

function writeAll(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(text, (error) => (error ? reject(error) : resolve())));
}

export async function runWorker(args: WorkerArgs): Promise<{ ops: number; ok: number; fail: number; info: number }> {
  const started = now();
  const out: NodeJS.WritableStream = args.out ? createWriteStream(args.out, { flags: 'w' }) : process.stdout;
  const counts = { ops: 0, ok: 0, fail: 0, info: 0 };
  let buffered = '';
  const record = (op: Op) => {
    counts.ops++;
    counts[op.outcome]++;
    buffered += JSON.stringify(op) + '\n';
  };
  const flush = async () => {
    if (buffered === '') return;
    const text = buffered;
    buffered = '';
    await writeAll(out, text);
  };
  // Ends the threads' runs: the duration's end, brought forward when the stop file appears.
  const until = { deadline: Infinity };
  const flusher = setInterval(() => {
    if (args.stopFile && existsSync(args.stopFile)) until.deadline = Math.min(until.deadline, now());
    void flush().catch(() => {});
  }, 200);

  const threads = Array.from({ length: args.threads }, (_, i) =>
    new Thread(args.processBase + i, args, mulberry32((args.seed * 7919 + args.processBase + i) | 0), record),
  );

  const client = await waitFor(`a connection to the coordinator at ${args.coordinator}`, () =>
    Client.connect(args.coordinator, { timeoutMs: args.timeoutMs, tls: args.tls && loadTls(args.tls) }), started + 30_000 - now(), 100);
  process.stderr.write(JSON.stringify({ msg: 'ready', processBase: args.processBase, clockOffsetMs: clockOffsetMs() }) + '\n');
  if (args.waitForGo) await goSignal(30_000);
  // The duration counts from here, not from the spawn: starting a process takes a second or more on a loaded
  // machine, and the harness times its nemesis from the moment every worker runs.
  until.deadline = Math.min(until.deadline, now() + args.durationMs);
  // A last line of defence for "bounded": the client's deadlines should end every operation long before this. An
  // operation still running then is recorded as indeterminate, as Jepsen does for a crashed client.
  const hardDeadlineMs = args.durationMs + 3 * args.timeoutMs + 10_000;
  const watchdog = setTimeout(() => {
    for (const thread of threads) {
      const op = thread.inFlight;
      if (op) record({ ...op, end: now(), outcome: 'info', error: 'WORKER_DEADLINE' });
    }
    void flush().finally(() => process.exit(3));
  }, hardDeadlineMs);
  watchdog.unref();
  const debug = process.env.KV_JEPSEN_WORKER_DEBUG;
  const debugTimer = debug ? setInterval(() => {
    const c = client.currentConfig;
    process.stderr.write(`${((now() - started) / 1000).toFixed(1)}s p${args.processBase} config ${c.version} ` +
      `${c.servers.map((s) => `${s.id.slice(0, 4)}:${s.state}`).join(' ')} ops ${counts.ops}\n`);
  }, 500) : undefined;
  try {
    await Promise.all(threads.map((thread) => thread.run(client, until)));
  } finally {
    clearInterval(flusher);
    clearInterval(debugTimer);
    await client.close();
    await flush();
    if (out !== process.stdout) await new Promise<void>((resolve) => (out as WriteStream).end(resolve));
    clearTimeout(watchdog);
  }
  return counts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const raw = process.argv[2];
  if (!raw) {
    process.stderr.write('usage: worker.js <json WorkerArgs>\n');
    process.exit(2);
  }
  const args = JSON.parse(raw) as WorkerArgs;
  runWorker(args).then(
    (counts) => {
      process.stderr.write(JSON.stringify({ msg: 'worker done', ...counts }) + '\n');
      // The history is flushed and the client closed: nothing left to wait for (a reconnect timer would only delay).
      process.exit(0);
    },
    (error) => {
      process.stderr.write(`worker failed: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}

// The backup's state machine (coordinator/backup.ts), one transition and one back-out path at a time, against a
// fake host: an in-memory config that `change` moves with the real transitions of coordinator/cluster.ts, fake
// daemons that answer each request as the test scripts (answer, refuse, time out, answer slowly, vanish), and
// virtual time, so bounds of seconds are checked to the millisecond and the file runs in well under a second.
import t, { type Test } from 'tap';
import { configChanges } from '../coordinator/config-changes.js';
import { runBackup, type BackupClock, type BackupHost } from '../coordinator/backup.js';
import type { StagedChange } from '../coordinator/config-log.js';
import * as cluster from '../coordinator/cluster.js';
import type { ClusterConfig, Freeze } from '../shared/config.js';
import { KvError, type ErrorCode } from '../shared/errors.js';
import { pino } from 'pino';
import type { MessageOf, RequestOf, RequestType, Results } from '../shared/protocol.js';
import { decodeState } from '../shared/state-file.js';
import { backupQuiesceMsMax, backupThawReserveMs, freezeLeaseMarginMs, snapshotPrepareMsMax } from '../shared/limits.js';

/**
 * Time that moves only when nothing else can: every pending promise chain runs to its end first, then the earliest
 * timer fires. Deterministic, and a wait of seconds costs nothing.
 */
class VirtualTime implements BackupClock {
  private now = 0;
  private seq = 0;
  private timers: Array<{ at: number; seq: number; fire: () => void }> = [];
  static readonly epochMs = Date.UTC(2026, 0, 1);

  nowMs = () => this.now;
  date = () => new Date(VirtualTime.epochMs + this.now);
  sleep = (ms: number) => new Promise<void>((fire) => this.timers.push({ at: this.now + Math.max(0, ms), seq: this.seq++, fire }));

  async run<T>(work: Promise<T>): Promise<T> {
    let settled = false;
    work.then(() => (settled = true), () => (settled = true));
    for (let steps = 0; ; steps++) {
      // setImmediate runs after every microtask queued so far, and nothing here does real I/O.
      await new Promise((resolve) => setImmediate(resolve));
      if (settled) return work;
      if (steps > 10_000) throw new Error('the backup took more than 10000 steps of virtual time');
      this.timers.sort((x, y) => x.at - y.at || x.seq - y.seq);
      const next = this.timers.shift();
      if (!next) throw new Error('the backup waits for something that never comes (no timer is pending)');
      this.now = next.at;
      next.fire();
    }
  }
}

/** What one fake daemon does with one request. Default: answers at once. */
interface Step {
  /** Answers (or refuses) this long after the request. */
  afterMs?: number;
  refuse?: ErrorCode;
  message?: string;
  /** Never answers: the request times out. */
  never?: boolean;
  /** The daemon's session ends when the request arrives: this request and every later one fail. */
  vanish?: boolean;
  /** Runs just before the answer, e.g. to change the config as something else in the cluster would. */
  before?: (fake: FakeCluster) => Promise<unknown>;
}
type Script = (t: RequestType, n: number) => Step | undefined;

const leaseMs = 5_000;
const backupRequest = (over: Partial<MessageOf<'backup'>> = {}): MessageOf<'backup'> => ({
  t: 'backup',
  id: 1,
  name: 'nightly',
  owner: 'tester',
  leaseMs,
  deadlineMs: 60_000,
  lockToken: null,
  ...over,
});

class FakeCluster {
  config: ClusterConfig;
  readonly time = new VirtualTime();
  /** Every request and config change in order: "a quiesce #1", "config freeze #1". */
  readonly timeline: string[] = [];
  /** The requests each daemon got, by name, as in the timeline. */
  readonly got = new Map<string, string[]>();
  /** The config changes the backup made, as in the timeline. */
  readonly changes: string[] = [];
  /** Every freeze set, in order: a request names its freeze as #1, #2, ... */
  readonly freezes: Array<Freeze & { atMs: number }> = [];
  /** When each freeze and thaw was set, in virtual ms. */
  readonly changedAtMs: number[] = [];
  readonly owed: string[] = [];
  readonly logs: Array<Record<string, unknown>> = [];
  readonly scripts = new Map<string, Script>();
  readonly gone = new Set<string>();
  /** A change whose description this returns true for fails, as a store that cannot save would. */
  failChange: (change: string) => boolean = () => false;
  private readonly names = new Map<string, string>();
  private readonly counts = new Map<string, number>();

  constructor(daemons: string[], tolerate = 1) {
    let config = cluster.newCluster('c1');
    for (const name of daemons) config = cluster.registerServer(config, { address: `${name}.lab:2001`, serverId: null, clusterId: null }).config;
    // Fixed ids (a: 1001, b: 1002, ...), so the order of members, which follows the ids, is the same every run.
    const servers = config.servers.map((s, i) => ({ ...s, id: `${1001 + i}` }));
    servers.forEach((s, i) => {
      this.names.set(s.id, daemons[i]!);
      this.got.set(daemons[i]!, []);
    });
    this.config = cluster.addSpace({ ...config, servers }, 'users', 4, tolerate);
  }

  idOf = (name: string) => [...this.names].find(([, n]) => n === name)![0];
  nameOf = (id: string) => this.names.get(id) ?? id;
  script(name: string, script: Script): this {
    this.scripts.set(name, script);
    return this;
  }
  /** What #k a freeze id is. */
  private freezeRef = (id: string | null) => (id === null ? 'null' : `#${this.freezes.findIndex((f) => f.id === id) + 1 || '?'}`);

  host(): BackupHost {
    const log = pino({ level: 'debug' }, { write: (line: string) => void this.logs.push(JSON.parse(line) as Record<string, unknown>) });
    return {
      config: () => this.config,
      changeAndStage: (first, then) => this.changeAndStage(first, then),
      ask: (serverId, request, timeoutMs) => this.ask(serverId, request, timeoutMs),
      owe: (serverId, name, freezeId) => void this.owed.push(`${this.nameOf(serverId)} ${name} ${this.freezeRef(freezeId)}`),
      log,
      clock: this.time,
    };
  }

  run(request = backupRequest()) {
    return this.time.run(runBackup(request, this.host()));
  }

  /** Runs a backup that must fail, with its error. */
  async failure(t: Test, request = backupRequest()): Promise<KvError> {
    const error = await this.run(request).then(
      () => undefined,
      (error: unknown) => error,
    );
    t.type(error, KvError, 'the backup fails with a KvError');
    return error as KvError;
  }

  /** The backup's debug log of its states: "prepare>freeze", ... */
  transitions = () => this.logs.filter((l) => l.msg === 'backup state').map((l) => `${String(l.from)}>${String(l.to)}`);

  private describe(before: ClusterConfig, after: ClusterConfig): string {
    if (after.spaces.length !== before.spaces.length) return 'spaces';
    const words = configChanges(before, after).map((c) => {
      if (c.what === 'freeze') return `freeze #${this.freezes.length + 1}`;
      if (c.what === 'thaw') return `thaw ${this.freezeRef(before.freeze!.id)}`;
      if (c.what === 'server') return `${this.nameOf(String(c.serverId))} ${String(c.to)}`;
      return c.what;
    });
    return words.join(', ') || 'other';
  }

  /** A staged change not yet published: every other change waits for it, as in config-log.ts. */
  private staged: Promise<void> | undefined;

  async change(transition: (config: ClusterConfig) => ClusterConfig): Promise<ClusterConfig> {
    const saved = await this.save(transition);
    return saved ? this.apply(saved.next, saved.what) : this.config;
  }

  /** As ConfigLog.changeAndStage: both saved at once, the first applied now, the second when published. */
  async changeAndStage(first: (config: ClusterConfig) => ClusterConfig, then: (config: ClusterConfig) => ClusterConfig): Promise<{ changed: ClusterConfig; staged: StagedChange }> {
    while (this.staged) await this.staged;
    await Promise.resolve();
    const changed = first(this.config);
    const next = then(changed);
    const whatFirst = this.describe(this.config, changed);
    // The thaw's freeze is numbered once applied, as the first is just below.
    const whatThen = this.describe(changed, next).replace('#?', `#${this.freezes.length + 1}`);
    const what = `${whatFirst}, ${whatThen}`;
    if (this.failChange(whatFirst) || this.failChange(whatThen)) {
      this.timeline.push(`config ${what} failed`);
      throw new KvError('INTERNAL', 'cannot save the config: no space left on device');
    }
    this.apply(changed, whatFirst);
    let release!: () => void;
    this.staged = new Promise((resolve) => (release = resolve));
    let published: ClusterConfig | undefined;
    return {
      changed,
      staged: {
        config: next,
        publish: () => {
          if (!published) {
            published = this.apply(next, whatThen);
            this.staged = undefined;
            release();
          }
          return published;
        },
      },
    };
  }

  private async save(transition: (config: ClusterConfig) => ClusterConfig): Promise<{ next: ClusterConfig; what: string } | undefined> {
    while (this.staged) await this.staged;
    await Promise.resolve();
    const next = transition(this.config);
    if (next === this.config) return undefined;
    const what = this.describe(this.config, next);
    if (this.failChange(what)) {
      this.timeline.push(`config ${what} failed`);
      throw new KvError('INTERNAL', 'cannot save the config: no space left on device');
    }
    return { next, what };
  }

  private apply(next: ClusterConfig, what: string): ClusterConfig {
    if (next.freeze && !this.config.freeze) this.freezes.push({ ...next.freeze, atMs: this.time.nowMs() });
    this.timeline.push(`config ${what}`);
    this.changes.push(what);
    this.changedAtMs.push(this.time.nowMs());
    this.config = next;
    return next;
  }

  private ask<T extends RequestType>(serverId: string, request: { t: T } & RequestOf<T>, timeoutMs: number): Promise<Results[T]> {
    const name = this.nameOf(serverId);
    const r = request as { t: RequestType; freezeId?: string | null; configVersion?: number };
    const what = `${r.t}${r.freezeId !== undefined ? ` ${this.freezeRef(r.freezeId)}` : ''}${r.configVersion !== undefined ? ` v${r.configVersion}` : ''}`;
    this.timeline.push(`${name} ${what}`);
    this.got.get(name)!.push(what);
    if (this.gone.has(name)) return Promise.reject(new KvError('UNAVAILABLE', `server ${serverId} is not connected`));
    const key = `${name} ${r.t}`;
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    const step = this.scripts.get(name)?.(r.t, n) ?? {};
    if (step.vanish) {
      this.gone.add(name);
      return Promise.reject(new KvError('CONNECTION_LOST', `the connection to server ${serverId} closed`));
    }
    const afterMs = step.afterMs ?? 0;
    if (step.never || afterMs > timeoutMs) {
      return this.time.sleep(timeoutMs).then(() => {
        throw new KvError('TIMEOUT', `${r.t} to server ${serverId} timed out after ${timeoutMs} ms`);
      });
    }
    return this.time.sleep(afterMs).then(async () => {
      await step.before?.(this);
      if (step.refuse) throw new KvError(step.refuse, step.message ?? `${name} refuses ${r.t}`);
      return this.answer(name, request) as Results[T];
    });
  }

  /** What a daemon answers; like a real one it quiesces and captures only under the freeze it is asked about. */
  private answer(name: string, request: { t: RequestType } & Record<string, unknown>): unknown {
    const underFreeze = () => {
      const freeze = this.freezes.find((f) => f.id === request.freezeId);
      if (!freeze || this.config.freeze?.id !== freeze.id) throw new KvError('BACKUP_FAILED', `freeze ${String(request.freezeId)} is not in force on ${name}`);
      if (this.time.nowMs() >= freeze.atMs + freeze.leaseMs) throw new KvError('BACKUP_FAILED', `freeze ${freeze.id} has ended on ${name} (its lease)`);
    };
    switch (request.t) {
      case 'prepare':
        return { tables: 3 };
      case 'quiesce':
        underFreeze();
        return { quiescedMs: 2 };
      case 'capture':
        underFreeze();
        return { files: 5, bytes: 500, quiescedMs: 1, captureMs: 4, attempts: 1 };
      case 'seal':
        return { path: `/data/${name}/backups/${String(request.name)}`, files: 6, bytes: 600 };
      case 'release_snapshot':
        return true;
      default:
        throw new Error(`a backup does not send ${request.t}`);
    }
  }
}

/** The requests of one attempt that goes through, on one daemon. */
const clean = (freeze: number, version: number) => ['prepare', `quiesce #${freeze}`, `capture #${freeze}`, `seal v${version}`];
const backedOut = (freeze: number, ...sent: string[]) => ['prepare', ...sent.map((s) => `${s} #${freeze}`), `release_snapshot #${freeze}`];

t.test('every state hands over to the next, in order, and each does its own part', async (t) => {
  const fake = new FakeCluster(['a', 'b', 'c']);
  fake.script('a', (t) => (t === 'quiesce' ? { afterMs: 7 } : t === 'capture' ? { afterMs: 11 } : undefined));
  const before = fake.config;
  const result = await fake.run();
  t.same(fake.transitions(), ['prepare>freeze', 'freeze>quiesce', 'quiesce>capture', 'capture>check', 'check>save', 'save>thaw', 'thaw>seal', 'seal>done']);
  const cut = before.version + 1;
  // Members go in the order they first appear in chains: space 1's first chain starts at its second server, b.
  t.same(fake.timeline, [
    // prepare: every member links its tables before anything is frozen
    'b prepare', 'c prepare', 'a prepare',
    // freeze
    'config freeze #1',
    // quiesce, then capture, every member under the freeze
    'b quiesce #1', 'c quiesce #1', 'a quiesce #1',
    'b capture #1', 'c capture #1', 'a capture #1',
    // check and save touch nobody; thaw: saved with the freeze, published once the captures are in
    'config thaw #1',
    // seal, after the thaw, with the cut's version
    `b seal v${cut}`, `c seal v${cut}`, `a seal v${cut}`,
  ]);
  t.same(fake.freezes.map(({ name, leaseMs }) => ({ name, leaseMs })), [{ name: 'nightly', leaseMs }], 'the freeze names the backup and its lease');
  t.equal(fake.config.freeze, undefined, 'thawed');
  t.same(fake.owed, [], 'nothing owed');
  t.equal(result.attempts, 1);
  t.equal(result.configVersion, cut, 'the cut is the frozen config');
  t.same(decodeState(result.coordinatorState, 'the result'), cluster.withoutFreeze({ ...before, version: cut, freeze: fake.freezes[0]! }) as ClusterConfig,
    'coordinatorState is the config at the cut with the freeze cleared');
  t.equal(decodeState(result.coordinatorState, 'the result').freeze, undefined);
  t.equal(result.freeze.ms, 18, "the freeze lasted a's quiesce and capture (virtual ms)");
  t.equal(result.frozenTotalMs, 18);
  t.equal(result.freeze.beganAt, new Date(VirtualTime.epochMs).toISOString());
  t.equal(result.freeze.endedAt, new Date(VirtualTime.epochMs + 18).toISOString());
  t.same(
    result.servers.map((s) => [fake.nameOf(s.serverId), s.address, s.host, s.path, s.files, s.bytes, s.quiescedMs, s.captureMs]),
    ['b', 'c', 'a'].map((n) => [n, `${n}.lab:2001`, `${n}.lab`, `/data/${n}/backups/nightly`, 6, 600, 2, 4]),
  );
});

t.test('a replica that is down is not in the backup; a partition with no live replica refuses it before any request', async (t) => {
  const fake = new FakeCluster(['a', 'b', 'c']);
  fake.config = cluster.setServerState(fake.config, fake.idOf('c'), 'not_available');
  const result = await fake.run();
  t.same(result.servers.map((s) => fake.nameOf(s.serverId)).sort(), ['a', 'b']);
  t.same(fake.got.get('c'), [], 'c got nothing');

  const lonely = new FakeCluster(['a', 'b'], 0);
  lonely.config = cluster.setServerState(lonely.config, lonely.idOf('b'), 'not_available');
  const error = await lonely.failure(t);
  t.equal(error.code, 'UNAVAILABLE');
  t.match(error.message, /no replica is available for partition \d of "users"/);
  t.same(lonely.timeline, [], 'no request, no config change');
});

t.test('prepare refused: no freeze, the snapshot released on every member, not retried', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('b', (t) => (t === 'prepare' ? { refuse: 'BAD_REQUEST', message: 'a snapshot named nightly exists already' } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'BAD_REQUEST', 'the refusal stays what it is');
  t.same(fake.changes, [], 'never frozen');
  t.same(fake.got.get('a'), ['prepare', 'release_snapshot #?']);
  t.same(fake.got.get('b'), ['prepare', 'release_snapshot #?'], 'released on the refusing daemon too (harmless)');
  t.same(fake.transitions(), []);
});

t.test('freeze refused (the cluster is frozen for another backup): nothing thawed, the prepares released', async (t) => {
  const fake = new FakeCluster(['a', 'b']);
  const other = { id: 'someone-else', name: 'other', leaseMs };
  fake.config = cluster.freeze(fake.config, other);
  const error = await fake.failure(t);
  t.equal(error.code, 'BACKUP_IN_PROGRESS');
  t.same(fake.changes, [], 'no change: above all the other freeze is not thawed');
  t.same(fake.config.freeze, other);
  for (const n of ['a', 'b']) t.same(fake.got.get(n), ['prepare', 'release_snapshot #?'], `${n}`);
  t.same(fake.transitions(), ['prepare>freeze']);
});

t.test('quiesce refused: thawed once, every snapshot released, not retried', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('a', (t) => (t === 'quiesce' ? { afterMs: 5, refuse: 'BACKUP_FAILED', message: 'freeze x has ended' } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'BACKUP_FAILED');
  t.equal(error.message, 'freeze x has ended');
  t.same(fake.changes, ['freeze #1', 'thaw #1']);
  for (const n of ['a', 'b']) t.same(fake.got.get(n), backedOut(1, 'quiesce'), n);
  t.same(fake.owed, []);
  t.equal(fake.config.freeze, undefined);
});

t.test('a daemon vanishing during the quiesce: thawed, released where it can be, owed to the one gone', async (t) => {
  const fake = new FakeCluster(['a', 'b', 'c']).script('b', (t) => (t === 'quiesce' ? { vanish: true } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'CONNECTION_LOST');
  t.same(fake.changes, ['freeze #1', 'thaw #1']);
  for (const n of ['a', 'b', 'c']) t.same(fake.got.get(n), backedOut(1, 'quiesce'), n);
  t.same(fake.owed, ['b nightly #1'], "b's release is owed to it, with the attempt's freeze");
});

t.test('capture refused: thawed, every snapshot released with the freeze id', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('b', (t) => (t === 'capture' ? { refuse: 'DATA_DIR_INVALID', message: 'disk full' } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'DATA_DIR_INVALID');
  t.same(fake.changes, ['freeze #1', 'thaw #1']);
  for (const n of ['a', 'b']) t.same(fake.got.get(n), backedOut(1, 'quiesce', 'capture'), n);
  t.same(fake.transitions(), ['prepare>freeze', 'freeze>quiesce', 'quiesce>capture']);
});

t.test('a capture whose files kept changing is retried after a wait', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('a', (t, n) =>
    t === 'capture' && n === 1 ? { afterMs: 3, refuse: 'UNAVAILABLE', message: "LevelDB's files kept changing during 3 capture attempts" } : undefined);
  const result = await fake.run();
  t.equal(result.attempts, 2);
  t.same(fake.changes, ['freeze #1', 'thaw #1', 'freeze #2', 'thaw #2']);
  t.same(fake.got.get('a'), [...backedOut(1, 'quiesce', 'capture'), ...clean(2, result.configVersion)]);
  t.same(fake.got.get('b'), [...backedOut(1, 'quiesce', 'capture'), ...clean(2, result.configVersion)]);
  t.equal(fake.changedAtMs[2]! - fake.changedAtMs[1]!, 100, 'the first wait is backupRetryWaitMsMin');
});

t.test('a change asked for while frozen waits for the thaw: the cut is not disturbed, the change lands right after', async (t) => {
  let asked: Promise<ClusterConfig> | undefined;
  const fake = new FakeCluster(['a', 'b']).script('b', (t) =>
    t === 'quiesce' ? { afterMs: 20, before: async () => void (asked = fake.change((c) => cluster.addSpace(c, 'orders', 2, 1))) } : undefined);
  const result = await fake.run();
  t.equal(result.attempts, 1, 'no retry: the config the daemons ran did not change under the quiesce and the captures');
  t.same(fake.changes, ['freeze #1', 'thaw #1', 'spaces'], 'the change waited for the thaw, then went through');
  t.same((await asked!).spaces.map((s) => s.name), ['users', 'orders']);
  t.same(decodeState(result.coordinatorState, 'the result').spaces.map((s) => s.name), ['users'], 'the cut is the frozen config');
  t.equal(fake.changedAtMs[1], 20, 'thawed the moment the last capture was in (the captures take no time here)');
  t.equal(result.freeze.ms, 20);
});

t.test('a failed capture backs out with the thaw saved with the freeze: published, not saved again', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('a', (t, n) => (t === 'capture' && n === 1 ? { afterMs: 5, refuse: 'UNAVAILABLE', message: 'disk gone' } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'UNAVAILABLE');
  t.same(fake.timeline.filter((e) => e.startsWith('config')), ['config freeze #1', 'config thaw #1']);
  t.equal(fake.config.freeze, undefined, 'thawed');
});

t.test('a capture that finishes right at the lease less its margin: the check backs it out and retries', async (t) => {
  const lease = 1_000; // margin: min(1000, lease / 5) = 200 ms
  const fake = new FakeCluster(['a', 'b']).script('a', (t, n) => (t === 'capture' && n === 1 ? { afterMs: lease - lease / 5 } : undefined));
  const result = await fake.run(backupRequest({ leaseMs: lease }));
  t.equal(result.attempts, 2);
  t.same(fake.transitions().slice(0, 4), ['prepare>freeze', 'freeze>quiesce', 'quiesce>capture', 'capture>check'], 'the capture itself went through');
  t.match(fake.logs.find((l) => l.msg === 'backup attempt backed out')?.err, 'the captures took 800 ms, too close to the 1000 ms lease');
  t.same(fake.changes, ['freeze #1', 'thaw #1', 'freeze #2', 'thaw #2']);
  for (const n of ['a', 'b']) t.same(fake.got.get(n), [...backedOut(1, 'quiesce', 'capture'), ...clean(2, result.configVersion)], n);
  t.equal(result.frozenTotalMs, 800);
});

t.test('a capture slower than the lease allows times out: backed out and retried', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('b', (t, n) => (t === 'capture' && n === 1 ? { afterMs: 10_000 } : undefined));
  const frozenMsMax = 20_000; // the lease, not the budget, bounds this capture
  const result = await fake.run(backupRequest({ frozenMsMax }));
  t.equal(result.attempts, 2);
  // The capture may wait out the lease less its margin, or the frozen budget less the thaw's reserve if less.
  const waited = Math.min(leaseMs - freezeLeaseMarginMs, frozenMsMax - backupThawReserveMs);
  t.equal(result.frozenTotalMs, waited);
  t.match(fake.logs.find((l) => l.msg === 'backup attempt backed out')?.err, `timed out after ${waited} ms`);
  t.same(fake.changes, ['freeze #1', 'thaw #1', 'freeze #2', 'thaw #2']);
});

t.test('a quiesce that never finishes: each attempt thaws after backupQuiesceMsMax, the backup fails at the frozen budget naming the daemon', async (t) => {
  const fake = new FakeCluster(['a', 'b', 'c']).script('c', (t) => (t === 'quiesce' ? { never: true } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'BACKUP_FAILED');
  // Attempts wait 1000, 1000 and what is left of the 3000 ms budget less the thaw's reserve: 900.
  const c = fake.config.servers.find((s) => s.id === fake.idOf('c'))!;
  t.equal(
    error.message,
    `backup nightly gave up after 3 attempt(s), the cluster frozen 2900 ms in all, the most --frozen-ms-max allows (3000 ms): ` +
      `server ${c.id} (${c.address}) did not quiesce within 900 ms`,
  );
  t.same(fake.changes, ['freeze #1', 'thaw #1', 'freeze #2', 'thaw #2', 'freeze #3', 'thaw #3']);
  for (const n of ['a', 'b', 'c']) t.same(fake.got.get(n), [1, 2, 3].flatMap((k) => backedOut(k, 'quiesce')), n);
  const frozen = [0, 2, 4].map((i) => fake.changedAtMs[i + 1]! - fake.changedAtMs[i]!);
  t.same(frozen, [backupQuiesceMsMax, backupQuiesceMsMax, 900], 'each freeze ends when its quiesce wait does');
  t.same([fake.changedAtMs[2]! - fake.changedAtMs[1]!, fake.changedAtMs[4]! - fake.changedAtMs[3]!], [4_000, 4_000], 'unfrozen 4 × as long as frozen in between');
  t.equal(fake.config.freeze, undefined);
});

t.test('a quiesce late on different daemons in different attempts: the failure names every one of them', async (t) => {
  // b never quiesces in the first attempt, c never in the later ones.
  const fake = new FakeCluster(['a', 'b', 'c'])
    .script('b', (t, n) => (t === 'quiesce' && n === 1 ? { never: true } : undefined))
    .script('c', (t, n) => (t === 'quiesce' && n > 1 ? { never: true } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'BACKUP_FAILED');
  t.match(error.message, /gave up after 3 attempt\(s\)/);
  t.match(error.message, /: server 1003 \(c\.lab:2001\) did not quiesce within 900 ms; server 1002 \(b\.lab:2001\) did not quiesce in time in an earlier attempt$/,
    'names c, late in the last attempt, and b, late in the first (a regression: b went unnamed)');
});

t.test('the deadline reached while the captures keep failing: BACKUP_FAILED after waits that grow', async (t) => {
  const kept = "LevelDB's files kept changing during 3 capture attempts";
  const fake = new FakeCluster(['a', 'b']).script('a', (t) => (t === 'capture' ? { afterMs: 10, refuse: 'UNAVAILABLE', message: kept } : undefined));
  const error = await fake.failure(t, backupRequest({ deadlineMs: 1_000 }));
  t.equal(error.code, 'BACKUP_FAILED');
  t.match(error.message, `backup nightly gave up after 4 attempt(s), the cluster frozen 40 ms in all, at the --deadline-ms: ${kept}`);
  const freezesAt = fake.freezes.map((f) => f.atMs);
  // Each attempt is frozen 10 ms; the waits are 100, 200, 400; the next, 800, would end past the deadline.
  t.same(freezesAt, [0, 110, 320, 730]);
  t.same(fake.changes, [1, 2, 3, 4].flatMap((k) => [`freeze #${k}`, `thaw #${k}`]));
  t.equal(fake.config.freeze, undefined);
});

t.test('the freeze and its thaw cannot be saved: the backup fails with nothing frozen, every snapshot released', async (t) => {
  const fake = new FakeCluster(['a', 'b']);
  fake.failChange = (what) => what.startsWith('thaw');
  const error = await fake.failure(t);
  t.equal(error.code, 'INTERNAL');
  t.match(error.message, /cannot save the config/);
  t.same(fake.timeline.filter((e) => e.startsWith('config')), ['config freeze #1, thaw #1 failed'], 'one save for both, failed');
  t.same(fake.freezes, [], 'never frozen: nothing was published');
  t.equal(fake.config.freeze, undefined);
  for (const n of ['a', 'b']) t.same(fake.got.get(n), ['prepare', 'release_snapshot #?'], n);
});

t.test('seal refused: no second thaw, every snapshot released, not retried', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('a', (t) => (t === 'seal' ? { afterMs: 50, refuse: 'DATA_DIR_INVALID', message: 'fsync failed' } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'DATA_DIR_INVALID');
  t.same(fake.changes, ['freeze #1', 'thaw #1'], 'thawed exactly once');
  const version = fake.config.version - 1; // the freeze's, before the thaw's
  for (const n of ['a', 'b']) t.same(fake.got.get(n), [...clean(1, version), 'release_snapshot #1'], n);
  t.same(fake.transitions(), ['prepare>freeze', 'freeze>quiesce', 'quiesce>capture', 'capture>check', 'check>save', 'save>thaw', 'thaw>seal']);
});

t.test('a daemon gone at the seal: its release is owed, the others released', async (t) => {
  const fake = new FakeCluster(['a', 'b', 'c']).script('c', (t) => (t === 'seal' ? { vanish: true } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'CONNECTION_LOST');
  t.same(fake.changes, ['freeze #1', 'thaw #1']);
  const version = fake.config.version - 1;
  for (const n of ['a', 'b', 'c']) t.same(fake.got.get(n), [...clean(1, version), 'release_snapshot #1'], n);
  t.same(fake.owed, ['c nightly #1']);
});

t.test('a prepare that never answers fails the backup at its own bound, never frozen', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('a', (t) => (t === 'prepare' ? { never: true } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'TIMEOUT');
  t.match(error.message, `timed out after ${snapshotPrepareMsMax} ms`);
  t.same(fake.changes, []);
  t.same(fake.got.get('a'), ['prepare', 'release_snapshot #?']);
});

t.test('a capture that hangs under the default budget: its wait is the budget less the thaw reserve, then the backup fails', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('b', (t) => (t === 'capture' ? { never: true } : undefined));
  const error = await fake.failure(t);
  t.equal(error.code, 'BACKUP_FAILED');
  t.match(error.message, /gave up after 1 attempt\(s\), the cluster frozen 2900 ms in all, the most --frozen-ms-max allows \(3000 ms\): capture to server 1002 timed out after 2900 ms$/);
  t.same(fake.changes, ['freeze #1', 'thaw #1']);
  t.same(fake.changedAtMs, [0, 2_900]);
  for (const n of ['a', 'b']) t.same(fake.got.get(n), backedOut(1, 'quiesce', 'capture'), n);
});

t.test('a coordinator that stalls after the freeze past the lease: no daemon is asked to quiesce, thawed, released', async (t) => {
  const fake = new FakeCluster(['a', 'b']);
  const host = { ...fake.host(), stallAfterFreezeMs: leaseMs - freezeLeaseMarginMs };
  const error = await fake.time.run(runBackup(backupRequest({ frozenMsMax: 60_000, deadlineMs: 10_000 }), host)).then(() => undefined, (e: unknown) => e as KvError);
  t.equal(error?.code, 'BACKUP_FAILED');
  // Each attempt is frozen 4000 ms and then waits 16000 unfrozen: the second would start past the 10 s deadline.
  t.match(error?.message, /gave up after 1 attempt\(s\), the cluster frozen 4000 ms in all, at the --deadline-ms: the freeze lease ran short$/);
  t.same(fake.changes, ['freeze #1', 'thaw #1']);
  t.same(fake.changedAtMs, [0, 4_000]);
  t.same(fake.transitions(), ['prepare>freeze', 'freeze>quiesce']);
  for (const n of ['a', 'b']) t.same(fake.got.get(n), backedOut(1), n);
});

t.test('a member not connected at prepare (its session gone, the config not yet saying so): retried, not failed', async (t) => {
  const fake = new FakeCluster(['a', 'b']).script('b', (t, n) =>
    t === 'prepare' && n === 1 ? { refuse: 'UNAVAILABLE', message: 'server b is not connected' } : undefined);
  const result = await fake.run();
  t.equal(result.attempts, 2, 'the second attempt goes through');
  t.same(fake.changes, ['freeze #1', 'thaw #1'], 'the first attempt froze nothing');
  t.same(fake.got.get('a'), ['prepare', 'release_snapshot #?', ...clean(1, result.configVersion)], "the first attempt's snapshot released");
  t.same(fake.got.get('b'), ['prepare', 'release_snapshot #?', ...clean(1, result.configVersion)]);
});

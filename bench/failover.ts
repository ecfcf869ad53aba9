// How long a failover of replicated coordinators takes (issue 14), with real processes: a 3-member etcd on
// loopback, 3 coordinators on it (`--etcd-lease-ttl-seconds` 2, then 5), 3 daemons, a space with --tolerate 1 and
// one writer process putting at a steady rate (bench/failover-writer.ts). Each round SIGKILLs the leading
// coordinator and, at the same instant, one daemon, and measures from the kill:
//  (a) a new leader: the surviving coordinators asked `leader` every 20 ms;
//  (b) the first config change the new leader accepts: add-space, retried every 20 ms until it is acknowledged;
//  (c) writes resuming: the first acknowledged put, sent after the kill, to a key whose chain held the killed
//      daemon (and the first acknowledgement to any key, which the coordinator's death need not stop), and when
//      the daemon is out of every chain (get_config every 20 ms).
// Then the coordinator and the daemon are started again (same port, same data dir) and the next round waits until
// every chain is whole and every daemon holds replicas. Reported: per round, and the median and range per TTL.
//
//   node dist/bench/run.js failover [--rounds 5] [--ttls 2,5] [--rate 100] [--keys 64] [--partitions 8] [--json]
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, KvError, type ClusterConfig } from '../shared/client.js';
import { partitionOf } from '../shared/partition.js';
import { startEtcd } from '../test/helpers/etcd.js';
import { KvProcess, killAllKvProcesses, pause, progress, withTimeout } from './cluster.js';
import { askLeader, processStartMs, startEtcdCoordinator, startEtcdCoordinators, type Coordinator } from './replicated.js';
import { build, describeMachine, machine, median, round } from './stats.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    ttls: { type: 'string', default: '2,5' },
    rate: { type: 'string', default: '100' },
    keys: { type: 'string', default: '64' },
    partitions: { type: 'string', default: '8' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(args.rounds);
const ttls = args.ttls.split(',').map(Number);
const pollMs = 20;
/** Every wait of a round is bounded by this: a failover that takes longer is a failure of the run, not a figure. */
const roundWaitMs = 60_000;
const stableWaitMs = 120_000;
const space = 'writes';
const writerScript = join(dirname(fileURLToPath(import.meta.url)), 'failover-writer.js');
const now = () => performance.timeOrigin + performance.now();

interface RoundResult {
  ttlSeconds: number;
  round: number;
  killedDaemon: string;
  newLeaderMs: number;
  configChangeMs: number;
  addSpaceAttempts: number;
  firstAckAnyKeyMs: number;
  writesResumeMs: number;
  daemonOutOfChainsMs: number;
}

/** Polls `probe` every pollMs until it gives a value, at most timeoutMs. */
async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = roundWaitMs): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(pollMs);
  }
}

const chainsOf = (config: ClusterConfig) => config.spaces.find((s) => s.name === space)?.partitions ?? [];

/** Every chain whole (tolerate+1 members, nothing joining or leaving), every daemon available and in some chain. */
function stable(config: ClusterConfig, daemons: number): boolean {
  const available = config.servers.filter((s) => s.state === 'available').map((s) => s.id);
  const partitions = chainsOf(config);
  return available.length === daemons && partitions.length > 0
    && partitions.every((p) => p.chain.length === 2 && !p.joining && !p.leaving)
    && available.every((id) => partitions.some((p) => p.chain.includes(id)));
}

class Writer {
  readonly acks: Array<{ sent: number; at: number; key: string }> = [];
  failures = 0;
  private readonly child: ChildProcess;
  readonly exited: Promise<void>;

  constructor(coordinators: string, rate: string, keys: string) {
    this.child = spawn(process.execPath, [writerScript, '--coordinator', coordinators, '--space', space, '--rate', rate, '--keys', keys], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const [kind, sent, at, key] = line.split(' ');
        if (kind === 'ack') this.acks.push({ sent: Number(sent), at: Number(at), key: key! });
        else if (kind === 'fail') this.failures++;
      }
    });
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    if (!(await withTimeout(this.exited.then(() => true), 10_000))) this.child.kill('SIGKILL');
  }
}

async function serverIdOf(daemon: KvProcess): Promise<string> {
  return String((await daemon.waitForLog('registered with the coordinator', processStartMs)).serverId);
}

/** Retries add-space every pollMs until one is acknowledged (a retry that finds the space made by an unanswered one counts too). */
async function changeConfig(client: Client, name: string): Promise<{ at: number; attempts: number }> {
  for (let attempts = 1; ; attempts++) {
    try {
      await client.addSpace(name, { partitions: 1 });
      return { at: now(), attempts };
    } catch (error) {
      if (error instanceof KvError && error.code === 'SPACE_EXISTS') return { at: now(), attempts };
      if (attempts * pollMs > roundWaitMs) throw error;
      await pause(pollMs);
    }
  }
}

async function runTtl(etcdEndpoints: string[], ttlSeconds: number, dir: string): Promise<RoundResult[]> {
  const store = { endpoints: etcdEndpoints, prefix: `/kv/bench-failover-${randomBytes(4).toString('hex')}`, ttlSeconds };
  const coordinators = await startEtcdCoordinators(3, store);
  const addresses = coordinators.map((c) => c.address).join(',');
  const startDaemon = (i: number, port = 0) =>
    new KvProcess(`daemon-${i + 1}`, ['daemon', '--listen-port', String(port), '--coordinator', addresses, '--data', join(dir, `ttl${ttlSeconds}-daemon-${i + 1}`)]);
  const daemons = [0, 1, 2].map((i) => startDaemon(i));
  const ids = await Promise.all(daemons.map(serverIdOf));
  // Short per-request deadlines: an attempt sent to a coordinator that has just died fails fast and is retried.
  const admin = await Client.connect(addresses, { timeoutMs: 2_000 });
  let writer: Writer | undefined;
  const results: RoundResult[] = [];
  try {
    await until('3 available daemons', async () => (await admin.showConfig().catch(() => undefined))?.servers.filter((s) => s.state === 'available').length === 3);
    await admin.addSpace(space, { partitions: Number(args.partitions), tolerate: 1 });
    writer = new Writer(addresses, args.rate, args.keys);
    await until('the writer to be acknowledged', () => writer!.acks.length > 0, processStartMs);
    for (let r = 1; r <= rounds; r++) {
      const config = await until('every chain whole and every daemon in one', async () => {
        const c = await admin.showConfig().catch(() => undefined);
        return c && stable(c, daemons.length) ? c : undefined;
      }, stableWaitMs);
      await pause(2_000); // the writer at its steady rate before the kill
      const answers = await Promise.all(coordinators.map((c) => askLeader(c.address)));
      const leading = answers.findIndex((a) => a?.leading);
      if (leading < 0) throw new Error('no coordinator leads before the kill');
      const oldEpoch = answers[leading]!.epoch;
      const victim = (r - 1) % daemons.length;
      const victimId = ids[victim]!;
      const partitions = chainsOf(config);
      const victimKeys = new Set(Array.from({ length: Number(args.keys) }, (_, i) => `k${i}`)
        .filter((k) => partitions[partitionOf(k, partitions.length)]!.chain.includes(victimId)));

      const killedAt = now();
      coordinators[leading]!.proc.child.kill('SIGKILL');
      daemons[victim]!.child.kill('SIGKILL');
      const survivors = coordinators.filter((_, i) => i !== leading);

      const [newLeaderAt, change, outAt] = await Promise.all([
        until('a new leader', async () => {
          const found = (await Promise.all(survivors.map((c) => askLeader(c.address)))).some((a) => a?.leading && a.epoch !== oldEpoch);
          return found && now();
        }),
        changeConfig(admin, `failover-${ttlSeconds}-${r}`),
        until(`daemon ${victimId} out of its chains`, async () => {
          const c = await admin.showConfig().catch(() => undefined);
          return c && chainsOf(c).every((p) => !p.chain.includes(victimId)) && now();
        }),
      ]);
      // Sent after the kill: a put the killed daemon had passed on just before may still be acknowledged after it.
      const resumed = await until('a write to a key the killed daemon held', () => writer!.acks.find((a) => a.sent > killedAt && victimKeys.has(a.key)));
      const anyAck = writer.acks.find((a) => a.at > killedAt)!;
      const result: RoundResult = {
        ttlSeconds,
        round: r,
        killedDaemon: victimId,
        newLeaderMs: Math.round(newLeaderAt - killedAt),
        configChangeMs: Math.round(change.at - killedAt),
        addSpaceAttempts: change.attempts,
        firstAckAnyKeyMs: Math.round(anyAck.at - killedAt),
        writesResumeMs: Math.round(resumed.at - killedAt),
        daemonOutOfChainsMs: Math.round(outAt - killedAt),
      };
      results.push(result);
      progress(`ttl ${ttlSeconds} s, round ${r}: ${JSON.stringify(result)}`);

      await Promise.all([coordinators[leading]!.proc.exited, daemons[victim]!.exited]);
      coordinators[leading] = await startEtcdCoordinator(`coordinator-${leading + 1}`, store, coordinators[leading]!.port);
      daemons[victim] = startDaemon(victim);
      ids[victim] = await serverIdOf(daemons[victim]!);
    }
    if (writer.failures > 0) progress(`the writer saw ${writer.failures} failed puts`);
    return results;
  } finally {
    await writer?.stop();
    await admin.close();
    await killAllKvProcesses();
  }
}

const spread = (values: number[]) => `${round(median(values), 0)} (${Math.min(...values)}–${Math.max(...values)})`;

const dir = mkdtempSync(join(tmpdir(), 'kv-bench-failover-'));
const etcd = await startEtcd();
const machineBefore = machine();
const startedAt = new Date();
try {
  const all: RoundResult[] = [];
  for (const ttl of ttls) all.push(...(await runTtl(etcd.endpoints, ttl, dir)));
  const machineAfter = machine();
  if (args.json) {
    process.stdout.write(JSON.stringify({ build: build(), machine: machineBefore, loadAfter: machineAfter.loadAverage, rounds: all }, null, 2) + '\n');
  } else {
    const rows = ttls.map((ttl) => {
      const of = (pick: (r: RoundResult) => number) => spread(all.filter((r) => r.ttlSeconds === ttl).map(pick));
      return `| ${ttl} s | ${of((r) => r.newLeaderMs)} | ${of((r) => r.configChangeMs)} | ${of((r) => r.firstAckAnyKeyMs)} | ${of((r) => r.writesResumeMs)} | ${of((r) => r.daemonOutOfChainsMs)} |`;
    });
    process.stdout.write([
      `failover: ${rounds} rounds per TTL, writer ${args.rate} puts/s over ${args.keys} keys, ${args.partitions} partitions, --tolerate 1`,
      `build ${build()}, ${startedAt.toISOString()}; machine: ${describeMachine(machineBefore)}; load average ${machineBefore.loadAverage.join(' ')} before, ${machineAfter.loadAverage.join(' ')} after`,
      '',
      '| lease TTL | new leader ms | first config change ms | first ack, any key ms | writes resume (killed daemon\'s keys) ms | daemon out of its chains ms |',
      '|---|--:|--:|--:|--:|--:|',
      ...rows,
      '',
      'median (min–max) of the rounds, from the SIGKILL of the leader and one daemon',
      '',
    ].join('\n'));
  }
} finally {
  await killAllKvProcesses();
  await etcd.close();
  rmSync(dir, { recursive: true, force: true });
}

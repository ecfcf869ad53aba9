// A generator process: forked by the parent (generators.ts), it connects its own client to the system the parent
// started and runs the driver's phases when told, each at the start time the parent gave every generator, with
// its share of the requests in flight (and of the keys, in the load phase). It answers each command with one
// message; a measured phase's answer carries its latency samples and the CPU it used. It exits when the parent
// says close or goes away.
import { performance } from 'node:perf_hooks';
import { loadPhase, mixPhase, type DriverRun } from './driver.js';
import { connectClient } from './connect.js';
import type { GeneratorRun } from './phase-run.js';
import type { ConnectInfo, SystemClient } from './system.js';
import { chooser, makeKeys, Values, workloads, type Distribution, type KeyChooser, type WorkloadName } from './workload.js';

export interface GeneratorSetup {
  /** 0-based: which generator this is (a local store's files are named after it). */
  generator: number;
  system: string;
  info: ConnectInfo;
  keys: number;
  valueBytes: number;
  distribution: Distribution;
  /** Its share of the requests in flight. */
  concurrency: number;
  /** The keys it loads in the load phase: [from, to). */
  range: { from: number; to: number };
}

export type ToGenerator =
  | { t: 'connect'; setup: GeneratorSetup }
  | { t: 'load'; startAtMs: number; timeoutMs: number }
  | { t: 'warm'; seconds: number; startAtMs: number }
  | { t: 'mix'; workload: WorkloadName; seconds: number; startAtMs: number; measured: boolean }
  | { t: 'close' };

export type FromGenerator = { t: 'ready' } | { t: 'done'; run?: GeneratorRun } | { t: 'failed'; message: string } | { t: 'closed' };

interface Connected {
  setup: GeneratorSetup;
  client: SystemClient;
  keys: string[];
  values: Values;
  pick: KeyChooser;
  name: string;
}

let connected: Connected | undefined;

const send = (message: FromGenerator) => new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));

/** Waits until the wall-clock time startAtMs (ms since the epoch), when every generator starts the phase. */
async function startAt(startAtMs: number): Promise<void> {
  const ms = startAtMs - (performance.timeOrigin + performance.now());
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
}

const cpuSeconds = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

/** Runs a phase and adds the CPU this process used during it. */
async function measured(phase: () => Promise<DriverRun>): Promise<GeneratorRun> {
  const before = cpuSeconds();
  const run = await phase();
  return { ...run, cpuSeconds: cpuSeconds() - before };
}

async function connect(setup: GeneratorSetup): Promise<FromGenerator> {
  const client = await connectClient(setup.info, setup.generator);
  connected = {
    setup,
    client,
    keys: makeKeys(setup.keys),
    values: new Values(setup.valueBytes),
    pick: chooser(setup.distribution, setup.keys),
    name: `${setup.system} (generator ${setup.generator + 1})`,
  };
  return { t: 'ready' };
}

async function load(c: Connected, timeoutMs: number): Promise<FromGenerator> {
  const { setup, client, keys, values, name } = c;
  const run = await measured(() => loadPhase(name, client, keys, setup.range, values, setup.concurrency, timeoutMs));
  if (client.local) {
    // A store in this process sees only this generator's writes: the rest of the keys, unmeasured, so that
    // every read finds its key.
    for (const rest of [{ from: 0, to: setup.range.from }, { from: setup.range.to, to: setup.keys }]) {
      if (rest.to > rest.from) await loadPhase(`${name} (the others' keys)`, client, keys, rest, values, setup.concurrency, timeoutMs);
    }
  }
  return { t: 'done', run };
}

/**
 * Before the load: `seconds` of puts, not measured, on keys of their own ("warm" where the loaded ones say
 * "user"; the same length), so the load is measured on processes already warm (their JIT, buffers, connections),
 * as the A, B and C phases are after their warm-ups, and without touching the loaded keys. The warm keys stay.
 */
async function warm(c: Connected, seconds: number): Promise<FromGenerator> {
  const { setup, client, keys, values, name } = c;
  const warmKeys = keys.map((key) => `warm${key.slice('user'.length)}`);
  await mixPhase(`${name} (load warm-up)`, client, workloads.load, warmKeys, chooser('uniform', setup.keys), values, setup.concurrency, seconds);
  return { t: 'done' };
}

async function mix(c: Connected, workload: WorkloadName, seconds: number, isMeasured: boolean): Promise<FromGenerator> {
  const { setup, client, keys, pick, values, name } = c;
  const phase = () => mixPhase(name, client, workloads[workload], keys, pick, values, setup.concurrency, seconds);
  if (!isMeasured) {
    await phase();
    return { t: 'done' };
  }
  return { t: 'done', run: await measured(phase) };
}

async function handle(message: ToGenerator): Promise<FromGenerator> {
  if (message.t === 'connect') return connect(message.setup);
  if (message.t === 'close') {
    const client = connected?.client;
    connected = undefined;
    await client?.close();
    return { t: 'closed' };
  }
  if (!connected) throw new Error(`"${message.t}" before "connect"`);
  await startAt(message.startAtMs);
  if (message.t === 'load') return load(connected, message.timeoutMs);
  if (message.t === 'warm') return warm(connected, message.seconds);
  return mix(connected, message.workload, message.seconds, message.measured);
}

if (!process.send) {
  process.stderr.write('bench/ycsb/generator.js is forked by the YCSB benchmark (generators.ts), not run on its own\n');
  process.exit(2);
}
// The parent is gone (it exited or was killed): nothing is left to report to.
process.on('disconnect', () => process.exit(0));
process.on('message', (message: ToGenerator) => {
  void handle(message)
    .catch((error: unknown): FromGenerator => ({ t: 'failed', message: (error as Error).stack ?? String(error) }))
    .then(async (reply) => {
      await send(reply);
      if (reply.t === 'closed') process.exit(0);
    });
});

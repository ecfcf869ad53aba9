// The parent's side of the generator processes: forks N of them (generator.ts), connects each to the started
// system with its share of the requests in flight and of the keys to load, starts each phase in all of them at
// one moment a little ahead, and merges their runs (phase-run.ts). Every wait is bounded; a generator that
// fails or exits fails the phase. Every generator forked and not yet exited is known, so that an interrupted run
// can kill them.
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { withTimeout } from '../cluster.js';
import type { FromGenerator, GeneratorSetup, ToGenerator } from './generator.js';
import { mergeRuns, ranges, shares, type GeneratorRun, type PhaseRun } from './phase-run.js';
import type { ProcessRef, System } from './system.js';
import type { Distribution, WorkloadName } from './workload.js';

const generatorScript = join(dirname(fileURLToPath(import.meta.url)), 'generator.js');

/** How far ahead of now a phase's common start is set: enough for every generator to get the command. */
const startAheadMs = 50;
/** Connecting a client (and, for the zipfian chooser, its table over every key) may take this long. */
const connectTimeoutMs = 120_000;
/** Beyond a phase's own bound, how long a generator may take to answer (sending its samples). */
const answerSlackMs = 60_000;
const closeTimeoutMs = 10_000;

export interface GeneratorOptions {
  generators: number;
  concurrency: number;
  keys: number;
  valueBytes: number;
  distribution: Distribution;
  /** Node flags for the generator processes (e.g. --cpu-prof). */
  nodeArgs: string[];
}

const running = new Set<ChildProcess>();

/** One forked generator and the one command it is answering. */
class Generator {
  private waiting: { resolve: (m: FromGenerator) => void; reject: (e: Error) => void } | undefined;
  private exit: string | undefined;

  constructor(
    readonly index: number,
    readonly child: ChildProcess,
  ) {
    child.on('message', (message: FromGenerator) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.resolve(message);
    });
    child.once('exit', (code, signal) => {
      running.delete(child);
      this.exit = `generator ${index + 1} exited (code ${code}, signal ${signal})`;
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.reject(new Error(this.exit));
    });
  }

  /** Sends one command and waits at most timeoutMs for its answer; a "failed" answer throws its message. */
  async request(message: ToGenerator, timeoutMs: number): Promise<FromGenerator> {
    if (this.exit) throw new Error(this.exit);
    if (this.waiting) throw new Error(`generator ${this.index + 1} is still answering a command`);
    const answer = new Promise<FromGenerator>((resolve, reject) => (this.waiting = { resolve, reject }));
    this.child.send(message);
    const reply = await withTimeout(answer, timeoutMs);
    if (reply === undefined) {
      this.waiting = undefined;
      throw new Error(`generator ${this.index + 1} did not answer "${message.t}" within ${Math.round(timeoutMs / 1000)} s`);
    }
    if (reply.t === 'failed') throw new Error(`generator ${this.index + 1}: ${reply.message}`);
    return reply;
  }

  get exited(): boolean {
    return this.exit !== undefined;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

export class Generators {
  private constructor(private readonly generators: Generator[]) {}

  /** Forks the generators and connects each to `system` (started). */
  static async start(system: System, options: GeneratorOptions): Promise<Generators> {
    const count = options.generators;
    const inflight = shares(options.concurrency, count);
    const keyRanges = ranges(options.keys, count);
    const info = system.connectInfo();
    const generators = Array.from({ length: count }, (_, i) => {
      const child = fork(generatorScript, [], {
        serialization: 'advanced', // typed arrays (the latency samples) as they are
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        execArgv: [...process.execArgv, ...options.nodeArgs],
      });
      running.add(child);
      return new Generator(i, child);
    });
    const pool = new Generators(generators);
    try {
      await Promise.all(
        generators.map((g, i) => {
          const setup: GeneratorSetup = {
            generator: i,
            system: system.name,
            info,
            keys: options.keys,
            valueBytes: options.valueBytes,
            distribution: options.distribution,
            concurrency: inflight[i]!,
            range: keyRanges[i]!,
          };
          return g.request({ t: 'connect', setup }, connectTimeoutMs);
        }),
      );
    } catch (error) {
      pool.kill();
      throw error;
    }
    return pool;
  }

  /** The generator processes, for their memory or CPU. */
  processes(): ProcessRef[] {
    return this.generators.filter((g) => g.child.pid !== undefined && !g.exited).map((g) => ({ name: `generator ${g.index + 1}`, pid: g.child.pid! }));
  }

  /** The load phase: each generator puts its range of the keys; measured. */
  async load(timeoutMs: number): Promise<PhaseRun> {
    const runs = await this.phase((startAtMs) => ({ t: 'load', startAtMs, timeoutMs }), timeoutMs);
    return mergeRuns(runs);
  }

  /** The load's warm-up: `seconds` of puts on keys that are not loaded, in every generator; not measured. */
  async warm(seconds: number): Promise<void> {
    await this.phase((startAtMs) => ({ t: 'warm', seconds, startAtMs }), seconds * 1000);
  }

  /** A mixed phase of `seconds` in every generator; the merged run when measured. */
  async mix(workload: WorkloadName, seconds: number, measured: true): Promise<PhaseRun>;
  async mix(workload: WorkloadName, seconds: number, measured: false): Promise<undefined>;
  async mix(workload: WorkloadName, seconds: number, measured: boolean): Promise<PhaseRun | undefined> {
    const runs = await this.phase((startAtMs) => ({ t: 'mix', workload, seconds, startAtMs, measured }), seconds * 1000);
    return measured ? mergeRuns(runs, Math.floor(seconds)) : undefined;
  }

  /** Sends every generator the phase's command with one start time; their runs, once all answered. */
  private async phase(command: (startAtMs: number) => ToGenerator, phaseMs: number): Promise<GeneratorRun[]> {
    const startAtMs = performance.timeOrigin + performance.now() + startAheadMs;
    const replies = await Promise.all(this.generators.map((g) => g.request(command(startAtMs), startAheadMs + phaseMs + answerSlackMs)));
    return replies.flatMap((r) => (r.t === 'done' && r.run ? [r.run] : []));
  }

  /** Asks every generator to close its client and exit; kills the ones that do not within a bound. */
  async close(): Promise<void> {
    await Promise.all(
      this.generators.map(async (g) => {
        try {
          if (!g.exited) await g.request({ t: 'close' }, closeTimeoutMs);
        } catch {
          // it failed to close: killed below
        }
        const exited = new Promise<void>((resolve) => (g.exited ? resolve() : g.child.once('exit', () => resolve())));
        if ((await withTimeout(exited.then(() => true), closeTimeoutMs)) === undefined) g.kill();
      }),
    );
    this.kill();
  }

  kill(): void {
    for (const g of this.generators) g.kill();
  }
}

/** Kills every generator process still running, e.g. on SIGINT. */
export function killAllGenerators(): void {
  for (const child of running) child.kill('SIGKILL');
}

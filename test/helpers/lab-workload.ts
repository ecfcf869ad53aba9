// A recorded client workload on a lab host: the Jepsen worker (test/jepsen/worker.ts) run in the client host's
// namespace, its history read back, the final reads done with `kv get` on the same host, and the history checked
// for linearizability (test/jepsen/checker.ts). The history also gives figures: the first write acknowledged after
// some moment (a coordinator back after a power loss).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkHistory, type HistoryVerdict } from '../jepsen/checker.js';
import type { Op } from '../jepsen/history.js';
import { clockOffsetMs, now, stateOf, type OpMix, type WorkerArgs } from '../jepsen/worker.js';
import { GaveUp, kv, runProcess, tempDir, waitFor, type KvProcess, type TestLike } from './cluster.js';
import type { LabHost } from './lab.js';

/** Where the workload's client runs: a lab host, or this machine (`thisHost`). */
export type ClientHost = Pick<LabHost, 'spawn' | 'kv'>;

export const thisHost: ClientHost = {
  spawn: (t, argv, env = {}) => runProcess(t, argv, env),
  kv: (t, args, env = {}, timeoutMs = 120_000) => kv(t, args, env, timeoutMs),
};
import type { TlsFiles } from '../../shared/tls.js';

const workerScript = join(dirname(fileURLToPath(import.meta.url)), '..', 'jepsen', 'worker.js');
/** The final reads' process number, outside every worker thread's. */
const finalReader = 9_999;

export interface Workload {
  proc: KvProcess;
  /** Resolves once the worker has recorded `count` operations (it flushes its history every 200 ms). */
  recorded(count: number, timeoutMs?: number): Promise<void>;
  /** Operations recorded so far. */
  count(): number;
  /** The history recorded so far (a line being written is left out), to watch it during a fault. */
  sofar(): Op[];
  /** A time of this (the test's) process's `now()` on the worker's clock, which its history uses (worker.ts clockOffsetMs). */
  onWorkerClock(time: number): Promise<number>;
  /** The history once the worker has finished (it fails the test if the worker did not). */
  finished(): Promise<Op[]>;
  /** Tells the worker to end now (each thread after its operation in flight), then `finished()`. */
  stop(): Promise<Op[]>;
}

/**
 * Starts `threads` client threads on `host` doing put, get, cond_put and atomic_add on `keys` for `seconds`, or
 * until `stop()`: a test whose faults take as long as they take gives a generous `seconds` and stops the workload
 * once it has seen what it waits for, rather than guessing a duration that covers them.
 */
export function startWorkload(
  t: TestLike,
  host: ClientHost,
  coordinator: string,
  options: {
    space: string; keys: string[]; seconds: number; threads?: number; seed?: number; timeoutMs?: number; tls?: TlsFiles;
    /** The operations' weights (worker.ts defaultMix); a second workload beside another needs its own processBase. */
    mix?: OpMix; processBase?: number;
  },
): Workload {
  const dir = tempDir(t, 'kv-lab-history-');
  const out = join(dir, 'history.jsonl');
  const stopFile = join(dir, 'stop');
  const args: WorkerArgs = {
    coordinator, space: options.space, keys: options.keys, threads: options.threads ?? 4, processBase: options.processBase ?? 100, ...(options.mix ? { mix: options.mix } : {}),
    durationMs: options.seconds * 1000, seed: options.seed ?? 1, timeoutMs: options.timeoutMs ?? 3_000,
    thinkMs: 5, errorBackoffMs: 100, out, stopFile, ...(options.tls ? { tls: options.tls } : {}),
  };
  const proc = host.spawn(t, [process.execPath, workerScript, JSON.stringify(args)]);
  const lines = () => {
    try {
      return readFileSync(out, 'utf8').split('\n').filter(Boolean).length;
    } catch {
      return 0; // not written yet
    }
  };
  const sofar = (): Op[] => {
    let text = '';
    try {
      text = readFileSync(out, 'utf8');
    } catch {
      return []; // not written yet
    }
    return text.split('\n').flatMap((line) => {
      try {
        return line ? [JSON.parse(line) as Op] : [];
      } catch {
        return []; // the worker is writing it now
      }
    });
  };
  const workload: Workload = {
    proc,
    count: () => lines(),
    sofar,
    onWorkerClock: async (time) => {
      const ready = await proc.waitForLog('ready', 60_000);
      return time - clockOffsetMs() + Number(ready.clockOffsetMs);
    },
    recorded: (count, timeoutMs = 60_000) =>
      waitFor(() => `the workload to record ${count} operations (${lines()} so far; stderr: ${proc.stderr.slice(-300)})`, () => {
        // Whether it had exited is read before the file: once exited, the file holds all it will ever hold.
        const exited = proc.exitCode !== undefined;
        if (lines() >= count) return true;
        if (exited) throw new GaveUp(`the workload exited ${proc.exitCode}`);
        return false;
      }, timeoutMs, 100).then(() => undefined),
    async finished() {
      const code = await proc.waitForExit(args.durationMs + 3 * args.timeoutMs + 60_000);
      if (code !== 0) throw new Error(`the workload exited ${code}: ${proc.stderr.slice(-1000)}`);
      return readFileSync(out, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Op);
    },
    stop() {
      writeFileSync(stopFile, '');
      return workload.finished();
    },
  };
  return workload;
}

/** One successful `kv get` per key from `host` (retried within a deadline), as history operations. */
export async function finalReads(t: TestLike, host: ClientHost, coordinator: string, space: string, keys: string[], args: string[] = []): Promise<Op[]> {
  const ops: Op[] = [];
  for (const key of keys) {
    await waitFor(`a final read of ${key} to succeed`, async () => {
      const start = now();
      const got = await host.kv(t, ['get', space, key, '-c', coordinator, '--timeout-ms', '5000', ...args], {}, 30_000);
      if (got.code !== 0 && got.code !== 4) return false; // 4: absent, a valid read
      ops.push({
        process: finalReader, key, kind: 'get', start, end: now(), outcome: 'ok',
        result: stateOf(got.code === 4 ? undefined : (JSON.parse(got.stdout) as Record<string, number>)),
      });
      return true;
    }, 60_000, 200);
  }
  return ops;
}

export interface Checked {
  verdict: HistoryVerdict;
  ops: number;
  ok: number;
  /** Acknowledged writes (put, cond_put that applied, atomic_add). */
  okWrites: number;
}

export function check(history: Op[]): Checked {
  return {
    verdict: checkHistory(history),
    ops: history.length,
    ok: history.filter((op) => op.outcome === 'ok').length,
    okWrites: history.filter((op) => op.outcome === 'ok' && op.kind !== 'get' && !(op.kind === 'cond_put' && op.result === false)).length,
  };
}

/** The first write acknowledged that began at or after `since` (wall-clock ms), if any. */
export const firstWriteAfter = (history: Op[], since: number): Op | undefined =>
  history
    .filter((op) => op.outcome === 'ok' && op.kind !== 'get' && op.start >= since)
    .sort((a, b) => a.end - b.end)[0];

// SHA-256 of files on a few threads: a backup's checksums are most of its CPU (about 0.5 GB/s per core here),
// and on one thread they also stall the process's event loop (a daemon's writes, during its seal). The threads
// are Piscina's (the worker-thread pool Node services use: queueing, a thread that dies replaced, idle threads
// not keeping the process alive); hash-worker.ts is the task.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { hashThreadsMax } from './limits.js';

/** What a hashing thread answers: an error travels as its message and code, which cloning an Error would drop. */
export type HashAnswer = { sha256: string } | { error: { message: string; code?: string } };

export class HashPool {
  private pool: Piscina | undefined;
  private readonly threads: number;

  constructor(threads = Math.min(hashThreadsMax, availableParallelism())) {
    this.threads = Math.max(1, threads);
  }

  /** The SHA-256 (hex) of the file at `path`. */
  async hash(path: string): Promise<string> {
    const answer = (await this.started().run(path)) as HashAnswer;
    if ('sha256' in answer) return answer.sha256;
    throw Object.assign(new Error(answer.error.message), answer.error.code ? { code: answer.error.code } : {});
  }

  /** Starts the threads now (each takes a V8 isolate's start, up to a few hundred ms on a busy machine). */
  start(): void {
    this.started();
  }

  /** Stops the threads; hashes still queued or running fail. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }

  private started(): Piscina {
    this.pool ??= new Piscina({
      filename: new URL('./hash-worker.js', import.meta.url).href,
      minThreads: this.threads,
      maxThreads: this.threads,
      // The threads outlive one backup: a daemon's next seal does not pay their start again.
      idleTimeout: Number.POSITIVE_INFINITY,
    });
    return this.pool;
  }
}

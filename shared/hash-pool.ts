// SHA-256 of files on a few threads: a backup's checksums are most of its CPU (about 0.5 GB/s per core here),
// and on one thread they also stall the process's event loop (a daemon's writes, during its seal).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { hashThreadsMax } from './limits.js';

export interface HashJob {
  id: number;
  path: string;
}

export type HashAnswer = { id: number; sha256: string } | { id: number; error: { message: string; code?: string } };

interface Pending {
  job: HashJob;
  resolve: (sha256: string) => void;
  reject: (error: Error) => void;
  /** The thread hashing it, once one is. */
  worker?: Worker;
}

export class HashPool {
  private readonly idle: Worker[] = [];
  private readonly workers: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly running = new Map<number, Pending>();
  private nextId = 1;
  private readonly threads: number;

  constructor(threads = Math.min(hashThreadsMax, availableParallelism())) {
    this.threads = Math.max(1, threads);
  }

  /** The SHA-256 (hex) of the file at `path`. */
  hash(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, path }, resolve, reject });
      this.pump();
    });
  }

  /** Starts the threads now (each takes a V8 isolate's start, up to a few hundred ms on a busy machine). */
  start(): void {
    while (this.workers.length < this.threads) this.idle.push(this.spawn());
  }

  /** Stops the threads; hashes still queued or running fail. */
  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    this.idle.length = 0;
    for (const p of [...this.queue.splice(0), ...this.running.values()]) p.reject(new Error('the hash pool was closed'));
    this.running.clear();
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.workers.length < this.threads ? this.spawn() : undefined);
      if (!worker) return;
      const pending = this.queue.shift()!;
      pending.worker = worker;
      this.running.set(pending.job.id, pending);
      worker.ref(); // a hash under way keeps the process alive, as the file read it stands for would
      worker.postMessage(pending.job);
    }
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    worker.unref();
    worker.on('message', (answer: HashAnswer) => {
      const pending = this.running.get(answer.id);
      this.running.delete(answer.id);
      worker.unref();
      this.idle.push(worker);
      if (pending) {
        if ('sha256' in answer) pending.resolve(answer.sha256);
        else pending.reject(Object.assign(new Error(answer.error.message), answer.error.code ? { code: answer.error.code } : {}));
      }
      this.pump();
    });
    worker.on('error', (error: unknown) => {
      // A thread that dies fails what it was doing; the others go on, and a new one is started when needed.
      this.workers.splice(this.workers.indexOf(worker), 1);
      const index = this.idle.indexOf(worker);
      if (index >= 0) this.idle.splice(index, 1);
      for (const [id, p] of this.running) {
        if (p.worker === worker) {
          this.running.delete(id);
          p.reject(error instanceof Error ? error : new Error(String(error)));
        }
      }
      this.pump();
    });
    this.workers.push(worker);
    return worker;
  }
}

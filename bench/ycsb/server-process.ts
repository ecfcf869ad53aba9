// A server binary (redis-server, etcd) run for one benchmark: found on the PATH, started in its own process
// group with its output kept, waited for with a bounded poll, stopped with SIGTERM and then SIGKILL of its group.
// Every one started and not yet exited is known, so that an interrupted run can kill them all.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pause, withTimeout } from '../cluster.js';

/** The path of an executable on the PATH (or in /usr/sbin, /usr/bin), or undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/bin', '/usr/bin', '/usr/sbin', '/bin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

const running = new Set<ServerProcess>();

export class ServerProcess {
  readonly child: ChildProcess;
  /** The last 64 KiB of its stdout and stderr, interleaved. */
  output = '';
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
  ) {
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: a last-resort SIGKILL reaches anything it started
    });
    running.add(this);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        running.delete(this);
        resolve();
      }),
    );
    this.child.once('error', (error) => {
      this.output += `\nspawn error: ${error.message}`;
      if (!this.exitStatus) {
        this.exitStatus = { code: null, signal: null };
        running.delete(this);
      }
    });
    const keep = (chunk: string) => (this.output = (this.output + chunk).slice(-65536));
    this.child.stdout!.setEncoding('utf8').on('data', keep);
    this.child.stderr!.setEncoding('utf8').on('data', keep);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Polls `probe` (every 50 ms, each try bounded by 2 s) until it resolves true; throws after timeoutMs or if the process exits. */
  async waitUntilReady(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (this.exitStatus) throw new Error(`${this.name} exited (${JSON.stringify(this.exitStatus)}) before it was ready:\n${this.output.slice(-2000)}`);
      try {
        if ((await withTimeout(probe(), 2_000)) === true) return;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`${this.name} was not ready within ${timeoutMs} ms${last ? ` (last: ${last})` : ''}:\n${this.output.slice(-2000)}`);
      await pause(50);
    }
  }

  /** SIGTERM, a bounded wait, then SIGKILL of its process group. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.exitStatus) this.child.kill('SIGTERM');
    if ((await withTimeout(this.exited.then(() => true), timeoutMs)) === undefined) {
      this.kill();
      await withTimeout(this.exited, 5_000);
    } else {
      this.kill(); // anything it left in its group
    }
  }

  kill(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  }
}

/** Kills every server process still running (their process groups), e.g. on SIGINT. */
export async function killAllServerProcesses(): Promise<void> {
  const all = [...running];
  for (const p of all) p.kill();
  await Promise.all(all.map((p) => withTimeout(p.exited, 5_000)));
}

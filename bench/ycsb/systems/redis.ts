// Redis: redis-server on a free loopback port in a temp dir, with no persistence (no RDB snapshots, no AOF),
// driven by one ioredis connection with auto-pipelining (the commands of one event-loop tick go out as one write).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, progress, withTimeout } from '../../cluster.js';
import { ServerProcess, findExecutable } from '../server-process.js';
import type { ProcessRef, System } from '../system.js';

const readyTimeoutMs = 15_000;

export class RedisSystem implements System {
  readonly name = 'redis';
  readonly label = 'Redis (no persistence, ioredis auto-pipelining)';
  private readonly binary = findExecutable('redis-server');
  private dir: string | undefined;
  private server: ServerProcess | undefined;
  private client: Redis | undefined;
  private version = '?';

  unavailable(): string | undefined {
    return this.binary ? undefined : 'redis-server not installed (bench/setup.sh installs it)';
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(os.tmpdir(), 'kv-bench-ycsb-redis-'));
    const port = await freePort();
    progress(`redis: redis-server on :${port} in ${this.dir}`);
    this.server = new ServerProcess('redis-server', this.binary!, [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no',
    ], { cwd: this.dir });
    const server = this.server;
    await server.waitUntilReady(async () => /Ready to accept connections/.test(server.output), readyTimeoutMs);
    this.client = new Redis({
      host: '127.0.0.1',
      port,
      enableAutoPipelining: true,
      lazyConnect: true,
      commandTimeout: 10_000,
      maxRetriesPerRequest: 1,
    });
    this.client.on('error', () => {}); // a failed command rejects; connection errors are reported through those
    await withTimeout(this.client.connect(), readyTimeoutMs);
    if ((await withTimeout(this.client.ping(), 5_000)) !== 'PONG') throw new Error('redis-server did not answer PING');
    this.version = /redis_version:(\S+)/.exec(await this.client.info('server'))?.[1] ?? '?';
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.client!.set(key, value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.client!.getBuffer(key)) ?? undefined;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    client?.disconnect();
    await this.server?.stop();
    this.server = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  processes(): ProcessRef[] {
    const pid = this.server?.pid;
    return pid === undefined ? [] : [{ name: 'redis-server', pid }];
  }

  /** None: it runs without persistence and keeps everything in memory. */
  dataDirs(): Array<{ name: string; path: string }> {
    return [];
  }

  details(): string {
    return `redis-server ${this.version}, --save "" --appendonly no; ioredis, one connection, enableAutoPipelining`;
  }
}

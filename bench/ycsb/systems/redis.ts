// Redis: redis-server on a free loopback port in a temp dir (its data dir), no RDB snapshots, and one of three
// durabilities: no persistence at all, an append-only file fsynced once a second (appendfsync everysec, Redis's
// default for AOF), or fsynced before every reply (appendfsync always: Redis writes and fsyncs the AOF once per
// event-loop turn, before it answers the commands of that turn, so concurrent writes share an fsync as kv's
// group commit does). Each generator drives it through one ioredis connection with auto-pipelining (the commands
// of one event-loop tick go out as one write).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, progress, withTimeout } from '../../cluster.js';
import { ServerProcess, findExecutable } from '../server-process.js';
import type { ConnectInfo, ProcessRef, System, SystemClient } from '../system.js';

const readyTimeoutMs = 15_000;

export type RedisPersistence = 'none' | 'everysec' | 'always';

const persistenceArgs: Record<RedisPersistence, string[]> = {
  none: ['--appendonly', 'no'],
  everysec: ['--appendonly', 'yes', '--appendfsync', 'everysec'],
  always: ['--appendonly', 'yes', '--appendfsync', 'always'],
};

const persistenceLabels: Record<RedisPersistence, string> = {
  none: 'no persistence',
  everysec: 'AOF, fsync every second',
  always: 'AOF, fsync before every reply',
};

export class RedisSystem implements System {
  readonly label: string;
  private readonly binary = findExecutable('redis-server');
  private dir: string | undefined;
  private server: ServerProcess | undefined;
  private port: number | undefined;
  private version = '?';

  constructor(
    readonly name: string,
    private readonly persistence: RedisPersistence,
  ) {
    this.label = `Redis (${persistenceLabels[persistence]}, ioredis auto-pipelining)`;
  }

  unavailable(): string | undefined {
    return this.binary ? undefined : 'redis-server not installed (bench/setup.sh installs it)';
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(os.tmpdir(), `kv-bench-ycsb-${this.name}-`));
    const port = await freePort();
    progress(`${this.name}: redis-server on :${port} in ${this.dir}`);
    this.server = new ServerProcess('redis-server', this.binary!, [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistenceArgs[this.persistence], '--dir', this.dir, '--daemonize', 'no',
    ], { cwd: this.dir });
    const server = this.server;
    await server.waitUntilReady(async () => /Ready to accept connections/.test(server.output), readyTimeoutMs);
    this.port = port;
    const probe = await RedisClient.connect({ kind: 'redis', port });
    try {
      if ((await withTimeout(probe.redis.ping(), 5_000)) !== 'PONG') throw new Error('redis-server did not answer PING');
      const info = await probe.redis.info('server');
      this.version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
      const aof = await probe.redis.config('GET', 'appendfsync');
      if (this.persistence !== 'none' && !(aof as string[]).includes(this.persistence)) throw new Error(`redis-server runs with appendfsync ${JSON.stringify(aof)}, not ${this.persistence}`);
    } finally {
      await probe.close();
    }
  }

  connectInfo(): ConnectInfo {
    if (this.port === undefined) throw new Error(`${this.name} is not started`);
    return { kind: 'redis', port: this.port };
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
    this.port = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  processes(): ProcessRef[] {
    const pid = this.server?.pid;
    return pid === undefined ? [] : [{ name: 'redis-server', pid }];
  }

  /** The AOF's dir when it persists; none when it keeps everything in memory. */
  dataDirs(): Array<{ name: string; path: string }> {
    return this.persistence === 'none' || !this.dir ? [] : [{ name: 'redis', path: this.dir }];
  }

  details(): string {
    const flags = this.persistence === 'none' ? '--appendonly no' : `--appendonly yes --appendfsync ${this.persistence}`;
    return `redis-server ${this.version}, --save "" ${flags}; ioredis, one connection per generator, enableAutoPipelining`;
  }
}

export class RedisClient implements SystemClient {
  readonly local = false;

  private constructor(readonly redis: Redis) {}

  static async connect(info: Extract<ConnectInfo, { kind: 'redis' }>): Promise<RedisClient> {
    const redis = new Redis({
      host: '127.0.0.1',
      port: info.port,
      enableAutoPipelining: true,
      lazyConnect: true,
      commandTimeout: 10_000,
      maxRetriesPerRequest: 1,
    });
    redis.on('error', () => {}); // a failed command rejects; connection errors are reported through those
    if ((await withTimeout(redis.connect().then(() => true), readyTimeoutMs)) === undefined) {
      redis.disconnect();
      throw new Error(`could not connect to redis-server on :${info.port} within ${readyTimeoutMs} ms`);
    }
    return new RedisClient(redis);
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.redis.set(key, value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.redis.getBuffer(key)) ?? undefined;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

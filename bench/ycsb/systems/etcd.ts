// etcd: a single-member etcd on free loopback ports in a temp dir (its defaults: every write is in the raft
// WAL, fsynced, before it is acknowledged), driven by one etcd3 client per generator (one gRPC channel over
// HTTP/2 each).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort, progress, withTimeout } from '../../cluster.js';
import { ServerProcess, findExecutable } from '../server-process.js';
import type { ConnectInfo, ProcessRef, System, SystemClient } from '../system.js';

const readyTimeoutMs = 30_000;
const requestTimeoutMs = 10_000;

/** etcd refuses to start on an architecture it does not support unless ETCD_UNSUPPORTED_ARCH names it (Go's name). */
function unsupportedArch(): NodeJS.ProcessEnv {
  if (process.arch === 'x64' || process.arch === 'arm64') return {};
  const goArch: Record<string, string> = { ia32: '386', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle' };
  return { ETCD_UNSUPPORTED_ARCH: goArch[process.arch] ?? process.arch };
}

export class EtcdSystem implements System {
  readonly name = 'etcd';
  readonly label = 'etcd (1 member, etcd3 client)';
  private readonly binary = findExecutable('etcd');
  private dir: string | undefined;
  private server: ServerProcess | undefined;
  private clientUrl: string | undefined;
  private version = '?';

  unavailable(): string | undefined {
    return this.binary ? undefined : 'etcd not installed (bench/setup.sh installs the Debian package etcd-server)';
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(os.tmpdir(), 'kv-bench-ycsb-etcd-'));
    const clientPort = await freePort();
    let peerPort = await freePort();
    while (peerPort === clientPort) peerPort = await freePort();
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    progress(`etcd: etcd on :${clientPort} (peer :${peerPort}) in ${this.dir}`);
    this.server = new ServerProcess('etcd', this.binary!, [
      '--name', 'default', '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `default=${peerUrl}`, '--initial-cluster-state', 'new',
      '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn',
    ], { cwd: this.dir, env: unsupportedArch() });
    const client = etcdClient(clientUrl);
    try {
      await this.server.waitUntilReady(async () => {
        await client.get('ycsb-ready-probe').string();
        return true;
      }, readyTimeoutMs);
      const status = await withTimeout(client.maintenance.status(), 5_000);
      this.version = status?.version ?? '?';
    } finally {
      client.close();
    }
    this.clientUrl = clientUrl;
  }

  connectInfo(): ConnectInfo {
    if (this.clientUrl === undefined) throw new Error('etcd is not started');
    return { kind: 'etcd', url: this.clientUrl };
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
    this.clientUrl = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  processes(): ProcessRef[] {
    const pid = this.server?.pid;
    return pid === undefined ? [] : [{ name: 'etcd', pid }];
  }

  dataDirs(): Array<{ name: string; path: string }> {
    return this.dir ? [{ name: 'etcd', path: join(this.dir, 'data') }] : [];
  }

  details(): string {
    return `etcd ${this.version}, single member, default settings (WAL fsynced per commit); etcd3 client, one instance per generator`;
  }
}

const etcdClient = (url: string) =>
  new Etcd3({
    hosts: url,
    dialTimeout: 5_000,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
  });

export class EtcdClient implements SystemClient {
  readonly local = false;

  private constructor(private readonly client: Etcd3) {}

  /** A client for the etcd at info.url; etcd3 dials on the first request, so this cannot fail. */
  static connect(info: Extract<ConnectInfo, { kind: 'etcd' }>): EtcdClient {
    return new EtcdClient(etcdClient(info.url));
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.client.put(key).value(value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.client.get(key).buffer()) ?? undefined;
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

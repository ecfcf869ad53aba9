// etcd: a single-member etcd on free loopback ports in a temp dir (its defaults: every write is in the raft
// WAL, fsynced, before it is acknowledged), driven by one etcd3 client (one gRPC channel over HTTP/2).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort, progress, withTimeout } from '../../cluster.js';
import { ServerProcess, findExecutable } from '../server-process.js';
import type { ProcessRef, System } from '../system.js';

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
  private client: Etcd3 | undefined;
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
    this.client = new Etcd3({
      hosts: clientUrl,
      dialTimeout: 5_000,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    });
    const client = this.client;
    await this.server.waitUntilReady(async () => {
      await client.get('ycsb-ready-probe').string();
      return true;
    }, readyTimeoutMs);
    const status = await withTimeout(client.maintenance.status(), 5_000);
    this.version = status?.version ?? '?';
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.client!.put(key).value(value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.client!.get(key).buffer()) ?? undefined;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    client?.close();
    await this.server?.stop();
    this.server = undefined;
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
    return `etcd ${this.version}, single member, default settings (WAL fsynced per commit); etcd3 client, one instance`;
  }
}

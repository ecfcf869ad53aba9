// kv itself: `kv up` with 3 daemons (a coordinator and the daemons as child processes) in a temp dir on free
// loopback ports, one space with the given partitions and tolerate, made by an admin Client that then closes;
// each generator connects a Client of its own (KvClient) for all of its concurrent requests. With `tls`, kv up
// --tls-dir: every connection is mutual TLS, every client an admin (its certificate is the one kv up made). With
// `durable`, kv up --durable: every daemon fsyncs its LevelDB writes before it acknowledges them.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Client } from '../../../shared/client.js';
import { loadTls } from '../../../shared/tls.js';
import { freePorts, progress, saveLog, startCluster, stopCluster, waitUntilUp, type Cluster } from '../../cluster.js';
import { childrenOf, kvProcessName } from '../../proc-cpu.js';
import type { ConnectInfo, ProcessRef, System, SystemClient } from '../system.js';

type KvConnectInfo = Extract<ConnectInfo, { kind: 'kv' }>;

const spaceName = 'ycsb';
const daemons = 3;

export interface KvSettings {
  tolerate: number;
  partitions: number;
  /** Node flags for kv up and its children (e.g. --cpu-prof). */
  nodeArgs?: string[];
  tls?: boolean;
  /** kv up --durable: the daemons fsync every write before acknowledging it. */
  durable?: boolean;
}

export class KvSystem implements System {
  readonly label: string;
  private dir: string | undefined;
  private cluster: Cluster | undefined;

  constructor(
    readonly name: string,
    private readonly settings: KvSettings,
  ) {
    this.label = `kv (${daemons} daemons, tolerate ${settings.tolerate}${settings.tls ? ', TLS' : ''}${settings.durable ? ', durable' : ''})`;
  }

  private get certs(): string {
    return join(this.dir!, 'certs');
  }

  unavailable(): string | undefined {
    return undefined;
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(os.tmpdir(), `kv-bench-ycsb-${this.name}-`));
    const ports = await freePorts(daemons);
    progress(`${this.name}: kv up in ${this.dir} (coordinator :${ports.coordinator}, daemons :${ports.daemonBase}..${ports.daemonBase + daemons - 1})`);
    const upArgs = [...(this.settings.tls ? ['--tls-dir', this.certs] : []), ...(this.settings.durable ? ['--durable'] : [])];
    this.cluster = startCluster(join(this.dir, 'cluster'), ports.coordinator, ports.daemonBase, daemons, this.settings.nodeArgs ?? [], upArgs);
    await waitUntilUp(this.cluster);
    const admin = await KvClient.open(this.connectInfo());
    try {
      const config = await admin.addSpace(spaceName, { partitions: this.settings.partitions, tolerate: this.settings.tolerate });
      if (config.servers.length !== daemons) throw new Error(`the cluster has ${config.servers.length} servers, not ${daemons}`);
    } finally {
      await admin.close().catch(() => {});
    }
  }

  connectInfo(): KvConnectInfo {
    if (!this.cluster) throw new Error(`${this.name} is not started`);
    const certs = this.certs;
    const tls = this.settings.tls ? { cert: join(certs, 'admin.crt'), key: join(certs, 'admin.key'), ca: join(certs, 'ca.crt') } : undefined;
    return { kind: 'kv', coordinator: this.cluster.coordinator, space: spaceName, ...(tls ? { tls } : {}) };
  }

  async stop(): Promise<void> {
    const cluster = this.cluster;
    this.cluster = undefined;
    if (cluster) {
      const stop = await stopCluster(cluster);
      if (stop.code !== 0 || stop.killed) progress(`${this.name}: kv up stopped uncleanly (${JSON.stringify(stop)}); log: ${saveLog(cluster, 'kv-bench-ycsb')}`);
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  /** kv up, the coordinator and the daemons. */
  processes(): ProcessRef[] {
    const root = this.cluster?.process.pid;
    if (root === undefined) return [];
    return [{ name: 'kv up', pid: root }, ...childrenOf(root).map((pid) => ({ name: kvProcessName(pid), pid }))];
  }

  /** Warnings and errors the cluster logged so far (a healthy run has none). */
  problems(): { count: number; first: string[] } {
    return { count: this.cluster?.problemCount ?? 0, first: this.cluster?.problems.slice(0, 5) ?? [] };
  }

  /** The daemons' data dirs (kv up puts them under its --dir as daemon-1 … daemon-N; the coordinator's is left out). */
  dataDirs(): Array<{ name: string; path: string }> {
    if (!this.cluster) return [];
    const dir = this.cluster.dir;
    return Array.from({ length: daemons }, (_, i) => ({ name: `daemon-${i + 1}`, path: join(dir, `daemon-${i + 1}`) }));
  }

  details(): string {
    const s = this.settings;
    return (
      `kv up${s.tls ? ' --tls-dir (every connection mutual TLS, P-256 certificates)' : ''}${s.durable ? ' --durable' : ''}, ${daemons} daemons, ` +
      `space "${spaceName}" with ${s.partitions} partitions, tolerate ${s.tolerate}; ` +
      (s.durable ? 'LevelDB writes fsynced before they are acknowledged' : 'LevelDB writes not fsynced')
    );
  }
}

/** One generator's kv Client, routing by the config it subscribed to when it connected (the space already made). */
export class KvClient implements SystemClient {
  readonly local = false;

  private constructor(
    private readonly client: Client,
    private readonly space: string,
  ) {}

  /** A kv Client for the cluster in info (an admin one with TLS: kv up's admin certificate). */
  static open(info: KvConnectInfo): Promise<Client> {
    return Client.connect(info.coordinator, { tls: info.tls ? loadTls(info.tls) : undefined });
  }

  static async connect(info: KvConnectInfo): Promise<KvClient> {
    const client = await KvClient.open(info);
    if (!client.currentConfig.spaces.some((s) => s.name === info.space)) {
      await client.close().catch(() => {});
      throw new Error(`the cluster at ${info.coordinator} has no space "${info.space}"`);
    }
    return new KvClient(client, info.space);
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.client.put(this.space, key, { v: value });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const attrs = await this.client.get(this.space, key);
    if (attrs === undefined) return undefined;
    const v = attrs.v;
    if (!(v instanceof Uint8Array)) throw new Error(`attribute v is a ${typeof v}, not bytes`);
    return v;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

// kv itself: `kv up` with 3 daemons (a coordinator and the daemons as child processes) in a temp dir on free
// loopback ports, one space with the given partitions and tolerate, one Client for every concurrent request.
// With `tls`, kv up --tls-dir: every connection is mutual TLS, the client an admin (it makes the space).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Client } from '../../../shared/client.js';
import { loadTls } from '../../../shared/tls.js';
import { freePorts, progress, saveLog, startCluster, stopCluster, waitUntilUp, type Cluster } from '../../cluster.js';
import { childrenOf, kvProcessName } from '../../proc-cpu.js';
import type { ProcessRef, System } from '../system.js';

const spaceName = 'ycsb';
const daemons = 3;

export class KvSystem implements System {
  readonly label: string;
  private dir: string | undefined;
  private cluster: Cluster | undefined;
  private client: Client | undefined;

  constructor(
    readonly name: string,
    private readonly tolerate: number,
    private readonly partitions: number,
    /** Node flags for kv up and its children (e.g. --cpu-prof). */
    private readonly nodeArgs: string[] = [],
    private readonly tls = false,
  ) {
    this.label = `kv (${daemons} daemons, tolerate ${tolerate}${tls ? ', TLS' : ''})`;
  }

  unavailable(): string | undefined {
    return undefined;
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(os.tmpdir(), `kv-bench-ycsb-${this.name}-`));
    const ports = await freePorts(daemons);
    progress(`${this.name}: kv up in ${this.dir} (coordinator :${ports.coordinator}, daemons :${ports.daemonBase}..${ports.daemonBase + daemons - 1})`);
    const certs = join(this.dir, 'certs');
    this.cluster = startCluster(join(this.dir, 'cluster'), ports.coordinator, ports.daemonBase, daemons, this.nodeArgs, this.tls ? ['--tls-dir', certs] : []);
    await waitUntilUp(this.cluster);
    const tls = this.tls ? loadTls({ cert: join(certs, 'admin.crt'), key: join(certs, 'admin.key'), ca: join(certs, 'ca.crt') }) : undefined;
    this.client = await Client.connect(this.cluster.coordinator, { tls });
    const config = await this.client.addSpace(spaceName, { partitions: this.partitions, tolerate: this.tolerate });
    // addSpace adopts the config it returns: the client routes by it from here on.
    if (config.servers.length !== daemons) throw new Error(`the cluster has ${config.servers.length} servers, not ${daemons}`);
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.client!.put(spaceName, key, { v: value });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const attrs = await this.client!.get(spaceName, key);
    if (attrs === undefined) return undefined;
    const v = attrs.v;
    if (!(v instanceof Uint8Array)) throw new Error(`attribute v is a ${typeof v}, not bytes`);
    return v;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => {});
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
    return `kv up${this.tls ? ' --tls-dir (every connection mutual TLS, P-256 certificates)' : ''}, ${daemons} daemons, space "${spaceName}" with ${this.partitions} partitions, tolerate ${this.tolerate}; LevelDB writes not fsynced`;
  }
}

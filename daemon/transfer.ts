// State transfer: how a daemon joining a partition's chain gets its data. The chain's tail streams the partition
// page by page; each page is read and sent from inside the partition's write queue, so no write commits between
// the read and the send, and pages and the writes the tail forwards (the joining daemon is its successor) reach
// the joining daemon in commit order. The joining daemon clears the partition on the first page, applies every
// page and forwarded write in arrival order through its own queue, and after the last page tells the
// coordinator, which makes it the chain's new tail.
import type { ClusterConfig } from '../shared/config.js';
import { findServer } from '../shared/config.js';
import { ConnectionPool } from '../shared/connection-pool.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { requestTimeoutMsDefault, scanPageBytesMax, scanPageEntriesMax, transferRetryDelayMs } from '../shared/limits.js';
import { daemonPath, type MessageOf } from '../shared/protocol.js';
import { inPartition } from '../shared/key-layout.js';
import type { Storage } from './storage.js';
import type { WriteQueues } from './write-queue.js';

export interface TransferHost {
  config(): ClusterConfig | undefined;
  serverId(): string | undefined;
  stopping(): boolean;
  reportDone(spaceId: number, partition: number, source: string): Promise<unknown>;
  log: Logger;
}

const partitionAt = (config: ClusterConfig, spaceId: number, partition: number) =>
  config.spaces.find((s) => s.id === spaceId)?.partitions[partition];

export class Transfers {
  /** Transfers this daemon is sending, as `space/partition->target`. */
  private readonly running = new Set<string>();
  private readonly peers = new ConnectionPool();

  constructor(
    private readonly host: TransferHost,
    private readonly storage: Storage,
    private readonly writes: WriteQueues,
  ) {}

  /** Starts sending every partition whose tail is this daemon and that has a daemon joining. */
  consider(config: ClusterConfig): void {
    const me = this.host.serverId();
    if (!me || this.host.stopping()) return;
    for (const space of config.spaces) {
      space.partitions.forEach((p, partition) => {
        if (!p.joining || p.chain[p.chain.length - 1] !== me) return;
        const key = `${space.id}/${partition}->${p.joining.server}`;
        if (this.running.has(key)) return;
        this.running.add(key);
        this.send(space.id, partition, p.joining.server)
          .catch((error) => {
            this.host.log.warn({ spaceId: space.id, partition, target: p.joining!.server, err: asKvError(error).message }, 'transfer failed; will retry');
            setTimeout(() => {
              const latest = this.host.config();
              if (latest) this.consider(latest);
            }, transferRetryDelayMs);
          })
          .finally(() => this.running.delete(key));
      });
    }
  }

  private async send(spaceId: number, partition: number, target: string): Promise<void> {
    const started = performance.now();
    let after: Buffer | null = null;
    let entries = 0;
    for (let first = true; ; first = false) {
      const config = this.host.config()!;
      const me = this.host.serverId()!;
      const p = partitionAt(config, spaceId, partition);
      // Stop when this daemon is no longer the tail or the target no longer joining: another transfer takes over.
      if (!p || p.joining?.server !== target || p.chain[p.chain.length - 1] !== me) return;
      const server = findServer(config, target);
      if (!server) return;
      const connection = await this.peers.get(server.address, daemonPath(server.id, config.incarnation), requestTimeoutMsDefault);
      // Held by a freeze like a client write: the page starts a change to partition data on the joining daemon.
      const last: boolean = await this.writes.exclusive(spaceId, partition, async () => {
        const page = await this.storage.scanRaw(spaceId, partition, after, scanPageEntriesMax, scanPageBytesMax);
        await connection.request(
          { t: 'transfer', v: config.version, spaceId, partition, source: me, first, done: page.next === null, entries: page.entries },
          requestTimeoutMsDefault,
        );
        entries += page.entries.length;
        after = page.next;
        return page.next === null;
      }, { writes: false, held: true });
      if (last) break;
    }
    this.host.log.info({ spaceId, partition, target, entries, ms: Math.round(performance.now() - started) }, 'transfer sent');
  }

  /** The joining side: applies one page in order with forwarded writes; reports after the last. */
  async receive(message: MessageOf<'transfer'>): Promise<null> {
    const config = this.host.config();
    const me = this.host.serverId();
    if (!config || !me || message.v > config.version) {
      throw new KvError('STALE_CONFIG', 'this daemon has not received that config yet', config?.version ?? 0);
    }
    const p = partitionAt(config, message.spaceId, message.partition);
    if (!p || p.joining?.server !== me || p.chain[p.chain.length - 1] !== message.source) {
      throw new KvError('WRONG_SERVER', `this daemon is not receiving partition ${message.partition} from ${message.source}`, config.version);
    }
    if (message.v < p.since) {
      // A page of a transfer begun for an earlier joining of this daemon: its data may be older than what is here.
      throw new KvError('STALE_CONFIG', `partition ${message.partition}'s replica set changed in config ${p.since}`, config.version);
    }
    for (const [key] of message.entries) {
      if (!inPartition(key, message.spaceId, message.partition)) throw new KvError('BAD_REQUEST', 'a transferred key lies outside its partition');
    }
    // Never held by a freeze: the tail sent it before it froze, and the tail's quiesce waits for this answer.
    await this.writes.exclusive(message.spaceId, message.partition, async () => {
      if (message.first) await this.storage.clearPartition(message.spaceId, message.partition);
      await this.storage.write(message.entries.map(([key, value]) => [Buffer.from(key), Buffer.from(value)] as const));
    }, { writes: true, held: false });
    if (message.done) {
      await this.host.reportDone(message.spaceId, message.partition, message.source);
      this.host.log.info({ spaceId: message.spaceId, partition: message.partition, source: message.source }, 'transfer received; joining the chain');
    }
    return null;
  }

  close(): Promise<void> {
    return this.peers.closeAll();
  }
}

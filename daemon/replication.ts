// Chain replication, the sending side. After a partition's batch is committed here, it is sent to this daemon's
// successor in the partition's chain, and the batch's writes are answered only when the successor has committed
// it (and, through its own replicator, everything after it): an acknowledged write is on every replica.
//
// What is sent is what the batch committed (each key's new encoded value, completion records included), not the
// operations, so sending a batch again is harmless. One batch per partition is out at a time, so order is kept.
// If the successor cannot be reached, the batch is sent again, to whatever successor the newest config names,
// until it succeeds or this daemon stops: a chain is never left with a write its head has and its tail lacks.
// A refusal that sending again cannot cure (BAD_REQUEST: a bug, or a successor whose storage fails) is logged and
// fails the batch's writes instead of stalling the partition's queue for good.
import type { ClusterConfig } from '../shared/config.js';
import { extendedChain, findServer } from '../shared/config.js';
import { ConnectionPool } from '../shared/connection-pool.js';
import { asKvError, KvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { reconnectDelayMsMax, reconnectDelayMsMin, requestTimeoutMsDefault } from '../shared/limits.js';
import { daemonPath } from '../shared/protocol.js';
import type { Change } from './write-queue.js';

export interface ReplicaHost {
  config(): ClusterConfig | undefined;
  serverId(): string | undefined;
  /** Resolves when a config newer than `version` runs here, or after `timeoutMs`. */
  configAfter(version: number, timeoutMs: number): Promise<void>;
  stopping(): boolean;
  log: Logger;
}

/** Answers from a successor after which the same batch may succeed: to the same daemon later, or to another. */
const retryableCodes = new Set(['STALE_CONFIG', 'WRONG_SERVER', 'UNAVAILABLE', 'TIMEOUT', 'CONNECTION_LOST']);

/**
 * Where a batch committed here goes next: the following daemon of the partition's chain (the joining daemon
 * after the tail), null at the end of it, or 'left' when this daemon's copy of the batch no longer counts: it is
 * out of the chain, or it is the joining member now but took the batch in another role (as the head, say, before
 * one config both moved the partition away from it and made it join again). A joining member's data is replaced
 * by the transfer from the tail, and the tail only has the writes it forwarded to it as the joining member.
 */
export function successorOf(config: ClusterConfig, spaceId: number, partition: number, serverId: string, asJoining: boolean): string | null | 'left' {
  const info = config.spaces.find((s) => s.id === spaceId)?.partitions[partition];
  const chain = info ? extendedChain(info) : [];
  const at = chain.indexOf(serverId);
  if (at < 0 || (info!.joining?.server === serverId && !asJoining)) return 'left';
  return chain[at + 1] ?? null;
}

interface Sending {
  spaceId: number;
  partition: number;
  asJoining: boolean;
  successor: string;
  abandon: (error: KvError) => void;
}

export class Replicator {
  private readonly peers = new ConnectionPool();
  /** Batches on their way to a successor, so a config that replaces the successor can redirect them. */
  private readonly sending = new Set<Sending>();

  /** A hung successor keeps its connection open: when a config names another successor, stop waiting for it. */
  onConfig(config: ClusterConfig): void {
    const me = this.host.serverId();
    if (!me) return;
    for (const s of this.sending) {
      if (successorOf(config, s.spaceId, s.partition, me, s.asJoining) !== s.successor) {
        s.abandon(new KvError('STALE_CONFIG', `the successor of partition ${s.partition} changed`));
      }
    }
  }

  constructor(private readonly host: ReplicaHost) {}

  readonly afterCommit = async (spaceId: number, index: number, changes: Change[], asJoining: boolean): Promise<void> => {
    const partition = `${spaceId}/${index}`;
    let wait = reconnectDelayMsMin;
    for (let attempt = 1; ; attempt++) {
      const config = this.host.config();
      const me = this.host.serverId();
      if (!config || !me) return;
      const next = successorOf(config, spaceId, index, me, asJoining);
      if (next === null) return; // the end of the chain: nothing further to replicate to
      if (next === 'left') {
        // Moved out of the chain with this batch unsent: it must not be acknowledged. The sender (a client, or the
        // predecessor, which sends it again to its new successor) learns the route is stale.
        throw new KvError('STALE_CONFIG', 'this daemon left the partition\'s chain (or its role in it) before the write was replicated', config.version);
      }
      const server = findServer(config, next);
      try {
        if (!server || server.state !== 'available') throw new KvError('UNAVAILABLE', `successor ${next} is not available`);
        const connection = await this.peers.get(server.address, daemonPath(server.id, config.incarnation), requestTimeoutMsDefault);
        await this.redirectable({ spaceId, partition: index, asJoining, successor: next }, connection.request(
          {
            t: 'replicate',
            v: config.version,
            spaceId,
            partition: index,
            changes: changes.map(([key, encoded]): [Uint8Array, Uint8Array | null] => [key, encoded ?? null]),
          },
          requestTimeoutMsDefault,
        ));
        return;
      } catch (error) {
        if (this.host.stopping()) throw new KvError('UNAVAILABLE', 'this daemon is shutting down');
        const refusal = asKvError(error);
        if (!retryableCodes.has(refusal.code)) {
          this.host.log.error({ partition, successor: next, code: refusal.code, err: refusal.message }, 'the successor refused a replicated batch; failing its writes');
          throw new KvError('INTERNAL', `successor ${next} refused the replicated write (${refusal.code}: ${refusal.message})`);
        }
        if (attempt === 1 || wait >= reconnectDelayMsMax) {
          this.host.log.warn({ partition, successor: next, err: asKvError(error).message, attempt }, 'replication to the successor failed; retrying');
        }
        await this.host.configAfter(config.version, wait);
        wait = Math.min(wait * 2, reconnectDelayMsMax);
      }
    }
  };

  private redirectable<T>(target: Omit<Sending, 'abandon'>, request: Promise<T>): Promise<T> {
    let entry: Sending | undefined;
    const abandoned = new Promise<never>((_, reject) => {
      entry = { ...target, abandon: reject };
      this.sending.add(entry);
    });
    return Promise.race([request, abandoned]).finally(() => this.sending.delete(entry!));
  }

  close(): Promise<void> {
    return this.peers.closeAll();
  }
}

// Where the cluster config lives, and who may change it: one interface, two stores. The local store (a LevelDB in
// the coordinator's data dir, local-store.ts) has one coordinator, which always leads. The etcd store
// (etcd-store.ts) has any number: each campaigns for one leader key on an etcd lease, and the winner's changes are
// fenced transactions. The rest of the coordinator knows only this file.
import type { ClusterConfig } from '../shared/config.js';
import type { CoordinatorsInfo } from '../shared/protocol.js';

export interface ConfigStore {
  /** What show-config says about it. */
  describe(): CoordinatorsInfo['store'];
  /**
   * Writes the config of a restored cluster, only into an empty store (an empty data dir, an empty etcd prefix);
   * refused with DATA_DIR_INVALID otherwise, leaving the store as it was.
   */
  restore(config: ClusterConfig): Promise<void>;
  /**
   * Resolves once this process leads (at once for the local store); rejects only when `signal` aborts. `self` is
   * the address this coordinator advertises, which followers name as the leader.
   */
  campaign(self: string, signal: AbortSignal): Promise<Leadership>;
  /** Who leads, as this process last saw it; undefined while nobody does (or it cannot tell: etcd unreachable). */
  leader(): { address: string; epoch: number } | undefined;
  /** The coordinators running on this store, by advertised address. */
  members(): Promise<string[]>;
  close(): Promise<void>;
}

/** One leadership of one process: from winning the campaign until its deadline passes or it resigns. */
export interface Leadership {
  /** Grows with every leadership of the store; stamped on every config this leadership makes. */
  readonly epoch: number;
  /** The config stored when the leadership began; undefined in a new store. */
  readonly stored: ClusterConfig | undefined;
  /**
   * Whether this process may still act as the leader. Checked on a monotonic clock, synchronously, before every
   * grant: false from the leadership's deadline on, even while nothing has told this process it lost.
   */
  readonly leading: boolean;
  /**
   * Persists `config` only if this leadership still holds and nothing else wrote the config since it last read or
   * wrote it; throws NOT_LEADER otherwise, and the leadership ends.
   */
  save(config: ClusterConfig): Promise<void>;
  /**
   * How much longer than one failure timeout a read lease granted by the previous leader may last after this one
   * won: 0 for the local store (one process at a time); the lease TTL for etcd, whose 3.4 releases can revoke a
   * leader's lease early, while that leader still acts until its own deadline.
   */
  readonly previousLeaderMsMax: number;
  /** Called once, when the leadership ends, with why. */
  onEnd(listener: (why: string) => void): void;
  /** Ends the leadership now and lets another coordinator take over without waiting out the lease. */
  resign(): Promise<void>;
}

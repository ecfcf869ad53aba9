// What this daemon tells the coordinator about the daemons it sends to. Replication and transfers say when a
// successor could not be reached (a connection that would not open, or went silent: Connection.watch) and since
// when; once that has lasted `peerUnreachableMs`, the coordinator hears of it (`peer_unreachable`), and the peer
// is probed until a connection to it opens again, each failed probe renewing the report, the first good one
// withdrawing it. What a cut means for chains is the coordinator's decision (coordinator/cut-reports.ts): a
// daemon only says what it sees.
import { findServer, type ClusterConfig } from '../shared/config.js';
import { Connection } from '../shared/connection.js';
import { asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { peerConnectTimeoutMs, peerProbeIntervalMs, peerUnreachableMs } from '../shared/limits.js';
import { daemonPath } from '../shared/protocol.js';
import type { TlsSettings } from '../shared/tls.js';

export interface PeerReportsHost {
  config(): ClusterConfig | undefined;
  /** Sends the report to the coordinator. */
  tell(serverId: string, reachable: boolean): Promise<unknown>;
  stopping(): boolean;
  /** How this daemon connects to others: the probe goes the way replication does. */
  tls?: TlsSettings | undefined;
  log: Logger;
}

export class PeerReports {
  /** performance.now() since which sending to a peer has failed, for peers not reached since. */
  private readonly failingSince = new Map<string, number>();
  /** Peers reported unreachable, with the timer of their next probe. */
  private readonly reported = new Map<string, NodeJS.Timeout>();

  constructor(private readonly host: PeerReportsHost) {}

  /** A connection to `serverId` being opened: one that will not open counts against the peer, failing since `sinceMs`. */
  async connecting(serverId: string, sinceMs: number, opening: Promise<Connection>): Promise<Connection> {
    try {
      return await opening;
    } catch (error) {
      this.failing(serverId, sinceMs);
      throw error;
    }
  }

  /**
   * A request to `serverId`: a connection dropped under it (it went silent: the pool watches it) counts against the
   * peer, any answer, an error too, for it. A TIMEOUT counts neither way: the peer's host answers pings, only the
   * request is slow (its own successor may be).
   */
  async answering<T>(serverId: string, sinceMs: number, request: Promise<T>): Promise<T> {
    try {
      const answer = await request;
      this.reached(serverId);
      return answer;
    } catch (error) {
      const code = asKvError(error).code;
      if (code === 'CONNECTION_LOST') this.failing(serverId, sinceMs);
      else if (code !== 'TIMEOUT') this.reached(serverId);
      throw error;
    }
  }

  /** Sending to `serverId` failed for want of a connection; it has been failing since `sinceMs` (performance.now()). */
  failing(serverId: string, sinceMs: number): void {
    const since = Math.min(this.failingSince.get(serverId) ?? Infinity, sinceMs);
    this.failingSince.set(serverId, since);
    const failingMs = performance.now() - since;
    if (failingMs < peerUnreachableMs || this.reported.has(serverId)) return;
    this.host.log.warn({ peer: serverId, failingMs: Math.round(failingMs) }, 'cannot reach a daemon this one sends to; telling the coordinator');
    this.tell(serverId, false);
    this.probeLater(serverId);
  }

  /** Sending to `serverId` succeeded. */
  reached(serverId: string): void {
    this.failingSince.delete(serverId);
  }

  stop(): void {
    for (const timer of this.reported.values()) clearTimeout(timer);
    this.reported.clear();
  }

  private tell(serverId: string, reachable: boolean): void {
    this.host.tell(serverId, reachable).catch((error) =>
      this.host.log.debug({ peer: serverId, reachable, err: asKvError(error).message }, 'cannot tell the coordinator about a peer'),
    );
  }

  private probeLater(serverId: string): void {
    const timer = setTimeout(() => void this.probe(serverId), peerProbeIntervalMs);
    timer.unref();
    this.reported.set(serverId, timer);
  }

  private async probe(serverId: string): Promise<void> {
    const config = this.host.config();
    const server = config && findServer(config, serverId);
    if (!config || !server || this.host.stopping()) {
      this.reported.delete(serverId);
      this.failingSince.delete(serverId);
      return;
    }
    try {
      const connection = await Connection.open(server.address, () => {}, peerConnectTimeoutMs, daemonPath(server.id, config.incarnation), this.host.tls, 'daemon');
      connection.close();
    } catch {
      if (!this.reported.has(serverId)) return; // stopped meanwhile
      this.tell(serverId, false); // renews the report, which lapses otherwise
      this.probeLater(serverId);
      return;
    }
    if (!this.reported.delete(serverId)) return;
    this.failingSince.delete(serverId);
    this.host.log.info({ peer: serverId }, 'reaches a daemon it had reported unreachable; telling the coordinator');
    this.tell(serverId, true);
  }
}

// The daemon's session with the coordinator: register (getting or proving its identity), receive every config,
// acknowledge it, and reconnect when the session drops. The coordinator notices a dead daemon by the WebSocket
// pings it sends; the daemon answers them automatically.
import { Connection } from '../shared/connection.js';
import type { ClusterConfig } from '../shared/config.js';
import { KvError, asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { reconnectDelayMsMax, reconnectDelayMsMin, requestTimeoutMsDefault } from '../shared/limits.js';
import type { Identity } from './storage.js';
import type { Message, RequestOf, RequestType, Results } from '../shared/protocol.js';

/** Registration answers after which retrying cannot help. */
const fatalCodes = new Set(['CLUSTER_MISMATCH', 'UNKNOWN_SERVER', 'BAD_REQUEST']);

export interface LinkOptions {
  coordinator: string;
  /** The address clients reach this daemon at. */
  address: string;
  identity: Identity | undefined;
  saveIdentity: (identity: Identity) => Promise<void>;
  onConfig: (config: ClusterConfig) => void;
  /** Requests the coordinator sends this daemon (backups), answered on the same connection. */
  onRequest: (message: Message, connection: Connection) => void;
  /** Called when the coordinator refuses this daemon for good after the first registration. */
  onFatal: (error: KvError) => void;
  log: Logger;
}

export class CoordinatorLink {
  private connection: Connection | undefined;
  private known: Identity | undefined;
  private stopped = false;

  constructor(private readonly options: LinkOptions) {
    this.known = options.identity;
  }

  get serverId(): string | undefined {
    return this.known?.serverId;
  }

  get identity(): Identity | undefined {
    return this.known;
  }

  /** Resolves once registered; rejects only on a fatal refusal (another cluster, unknown server id). */
  async start(): Promise<void> {
    await this.connectUntilRegistered();
  }

  /** A request to the coordinator over this daemon's session. */
  ask<T extends RequestType>(request: { t: T } & RequestOf<T>): Promise<Results[T]> {
    const connection = this.connection;
    if (!connection || connection.closed) return Promise.reject(new KvError('UNAVAILABLE', 'not connected to the coordinator'));
    return connection.request(request, requestTimeoutMsDefault);
  }

  ack(version: number): void {
    this.connection?.send({ t: 'config_ack', version });
  }

  /** Tells the coordinator this daemon is shutting down on purpose, then closes the session. */
  async leave(): Promise<void> {
    this.stopped = true;
    const connection = this.connection;
    if (!connection || connection.closed) return;
    await connection.request({ t: 'leave' }, 2_000).catch(() => {});
    connection.close();
  }

  private async connectUntilRegistered(): Promise<void> {
    const { log } = this.options;
    let delay = reconnectDelayMsMin;
    let warned = false;
    while (!this.stopped) {
      try {
        await this.register();
        return;
      } catch (error) {
        const kvError = asKvError(error);
        if (fatalCodes.has(kvError.code)) throw kvError;
        if (!warned || delay >= reconnectDelayMsMax) {
          log.warn({ coordinator: this.options.coordinator, code: kvError.code, err: kvError.message }, 'cannot register; retrying');
          warned = true;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, reconnectDelayMsMax);
      }
    }
  }

  private async register(): Promise<void> {
    const { options } = this;
    const connection = await Connection.open(
      options.coordinator,
      (message) => {
        if (message.t === 'config') options.onConfig(message.config);
        else options.onRequest(message, connection);
      },
      requestTimeoutMsDefault,
    );
    try {
      const answer = await connection.request(
        {
          t: 'register',
          address: options.address,
          serverId: this.known?.serverId ?? null,
          clusterId: this.known?.clusterId ?? null,
        },
        requestTimeoutMsDefault,
      );
      if (!this.known) {
        this.known = { serverId: answer.serverId, clusterId: answer.clusterId };
        await options.saveIdentity(this.known);
      }
    } catch (error) {
      connection.close();
      throw error;
    }
    this.connection = connection;
    options.log.info({ serverId: this.known.serverId, clusterId: this.known.clusterId }, 'registered with the coordinator');
    connection.onceClosed(() => {
      if (this.stopped) return;
      options.log.warn('lost the coordinator session; reconnecting');
      this.connectUntilRegistered().catch((error) => options.onFatal(asKvError(error)));
    });
  }
}

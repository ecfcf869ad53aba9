// How every kv command ends: its output on stdout, or one readable line on stderr and a meaningful exit code.
import { asKvError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { Client } from '../shared/client.js';
import { exitCodeOf } from './exit-codes.js';

export function fail(error: unknown): never {
  const kvError = asKvError(error);
  process.stderr.write(`kv: ${kvError.message} (${kvError.code})\n`);
  process.exit(exitCodeOf(kvError.code));
}

/** Runs a short command against the cluster: connect, do the work, close. */
export async function withClient(
  argv: { coordinator: string; 'timeout-ms': number },
  work: (client: Client) => Promise<number | void>,
): Promise<void> {
  let client: Client | undefined;
  try {
    client = await Client.connect(argv.coordinator, { subscribe: false, timeoutMs: argv['timeout-ms'] });
    const code = await work(client);
    await client.close();
    process.exitCode = code ?? 0;
  } catch (error) {
    await client?.close();
    fail(error);
  }
}

/**
 * Runs a long-lived process (coordinator, daemon): start it, and on SIGTERM or SIGINT stop it gracefully and
 * exit 0, in every state. A signal while it starts (a daemon still trying to reach its coordinator) aborts the
 * start, which undoes what it began; one that comes as the start completes stops what it started. A start failure
 * is one line and a non-zero exit.
 *
 * Started by `kv up` (with an IPC channel), it tells its parent when it serves (`Ready`), and stops when the
 * parent is gone: a killed `kv up` leaves no cluster behind.
 */
export async function serve(log: Logger, start: (abort: AbortSignal) => Promise<Service>): Promise<void> {
  const abort = new AbortController();
  let running: Service | undefined;
  let signalled = false;
  const stopped = () => {
    log.info('stopped');
    process.exit(0);
  };
  const stop = (service: { stop: () => Promise<void> }) =>
    service.stop().then(stopped, (error) => {
      log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    });
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal, starting: running === undefined }, 'shutting down');
    if (running) void stop(running);
    else abort.abort();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.once('disconnect', () => shutdown('parent exited'));
  try {
    running = await start(abort.signal);
  } catch (error) {
    if (signalled) return stopped(); // the start gave up because we asked it to, and undid what it began
    log.flush?.();
    fail(error);
  }
  if (signalled) return void stop(running);
  const ready: Ready = { t: 'ready', address: running.advertised || running.address, serverId: running.serverId ?? null, clusterId: running.clusterId ?? null };
  process.send?.(ready);
}

/** A long-lived process as `serve` runs it. */
export interface Service {
  stop: () => Promise<void>;
  address: string;
  /** The address others dial, where it differs from `address` (--advertise); empty or absent: `address`. */
  advertised?: string;
  serverId?: string | undefined;
  clusterId?: string | undefined;
}

/** What a process `serve` runs tells its parent once it serves: a daemon once it has registered. */
export interface Ready {
  t: 'ready';
  address: string;
  serverId: string | null;
  clusterId: string | null;
}

export const isReady = (message: unknown): message is Ready =>
  typeof message === 'object' && message !== null && (message as { t?: unknown }).t === 'ready';

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
 * exit 0. A start failure is one line and a non-zero exit.
 */
export async function serve(log: Logger, start: () => Promise<{ stop: () => Promise<void> }>): Promise<void> {
  let running: { stop: () => Promise<void> };
  try {
    running = await start();
  } catch (error) {
    log.flush?.();
    fail(error);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    running.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

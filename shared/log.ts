// Logs go to stderr (stdout is for a command's output): JSON lines for machines, pretty when stderr is a TTY.
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger };

// pino-pretty (and its colour and date libraries) is loaded only for a terminal: a daemon, a cron job or a pipe
// writes JSON lines and never pays for it. require, not import(): a logger is made synchronously at startup.
const require = createRequire(import.meta.url);

function prettyStream(): DestinationStream {
  const pretty = require('pino-pretty') as typeof PinoPretty;
  return pretty({ destination: 2, colorize: true, sync: true, ignore: 'pid,hostname' });
}

export function createLogger(name: string, level = process.env.KV_LOG_LEVEL ?? 'info'): Logger {
  const stream = process.stderr.isTTY ? prettyStream() : pino.destination({ fd: 2, sync: true });
  return pino({ name, level, base: { pid: process.pid } }, stream);
}

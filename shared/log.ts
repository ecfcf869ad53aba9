// Logs go to stderr (stdout is for a command's output): JSON lines for machines, pretty when stderr is a TTY.
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { writerPrettifiers } from './log-writer.js';

export type { Logger };

export function createLogger(name: string, level = process.env.KV_LOG_LEVEL ?? 'info'): Logger {
  const stream = process.stderr.isTTY
    ? pretty({ destination: 2, colorize: true, sync: true, ignore: 'pid,hostname', customPrettifiers: writerPrettifiers })
    : pino.destination({ fd: 2, sync: true });
  return pino({ name, level, base: { pid: process.pid } }, stream);
}

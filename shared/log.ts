// Logs go to stderr (stdout is for a command's output): JSON lines for machines, pretty when stderr is a TTY.
// Every line is written synchronously, in order, through one gate: while a progress bar owns the terminal's last
// line (cli/backup/progress.ts) lines wait, and follow the finished bar, instead of overwriting it.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { writerPrettifiers } from './log-writer.js';

export type { Logger };

// pino-pretty (and its colour and date libraries) is loaded only for a terminal: a daemon, a cron job or a pipe
// writes JSON lines and never pays for it. require, not import(): a logger is made synchronously at startup.
const require = createRequire(import.meta.url);

let held: string[] | undefined;
const pause = new Int32Array(new SharedArrayBuffer(4));

/** All of `text`, waiting out a full pipe (EAGAIN) as pino's own sync destination does; a closed stderr is ignored. */
function writeAll(text: string): void {
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; ) {
    try {
      at += writeSync(2, bytes, at);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') return;
      if (code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

function toStderr(line: string): void {
  if (held) held.push(line);
  else writeAll(line);
}

/** Holds log lines until the returned function is called, which writes them. */
export function holdLogs(): () => void {
  if (held) return () => {};
  held = [];
  return () => {
    const lines = held ?? [];
    held = undefined;
    for (const line of lines) writeAll(line);
  };
}

export function createLogger(name: string, level = process.env.KV_LOG_LEVEL ?? 'info'): Logger {
  const pretty = process.stderr.isTTY
    ? (require('pino-pretty') as typeof PinoPretty).prettyFactory({ colorize: true, ignore: 'pid,hostname', customPrettifiers: writerPrettifiers })
    : undefined;
  return pino({ name, level, base: { pid: process.pid } }, { write: (line: string) => toStderr(pretty ? pretty(line) : line) });
}

// Logs go to stderr (stdout is for a command's output): JSON lines for machines, pretty when stderr is a TTY.
// Every line is written synchronously, in order, through one gate: while a progress bar owns the terminal's last
// line (cli/backup/progress.ts) lines wait, and follow the finished bar, instead of overwriting it.
import { writeSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger };

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
  const pretty = process.stderr.isTTY ? prettyFactory({ colorize: true, ignore: 'pid,hostname' }) : undefined;
  return pino({ name, level, base: { pid: process.pid } }, { write: (line: string) => toStderr(pretty ? pretty(line) : line) });
}

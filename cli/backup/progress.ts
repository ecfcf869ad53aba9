// Progress of long work: a bar (bytes and files) when stderr is a terminal, throttled log lines otherwise.
// While the bar is drawn it owns the terminal's last line: log lines are held (shared/log.ts) and written once
// the bar is finished, so nothing overwrites it and everything is out before the command prints its summary.
import cliProgress from 'cli-progress';
import { holdLogs, type Logger } from '../../shared/log.js';
import { formatBytes } from './report.js';

export interface Progress {
  start(totalBytes: number, totalFiles: number): void;
  /** Absolute figures so far. */
  update(bytes: number, files: number): void;
  /** Finishes the bar (idempotent). */
  stop(): void;
}

const logEveryMs = 2_000;

export function createProgress(log: Logger, what: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY) {
    // {total} and {value} are cli-progress's own (raw numbers): our figures use other names.
    const bar = new cliProgress.SingleBar(
      {
        format: `${what} [{bar}] {percentage}% | {doneSize} of {totalSize} | {files}/{totalFiles} files | ETA {eta_formatted}`,
        stream,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    let totals = { bytes: 0, files: 0 };
    let release: (() => void) | undefined;
    return {
      start(totalBytes, totalFiles) {
        totals = { bytes: totalBytes, files: totalFiles };
        release = holdLogs();
        bar.start(Math.max(totalBytes, 1), 0, { doneSize: formatBytes(0), totalSize: formatBytes(totalBytes), files: 0, totalFiles });
      },
      update(bytes, files) {
        bar.update(Math.min(bytes, Math.max(totals.bytes, 1)), { doneSize: formatBytes(bytes), totalSize: formatBytes(totals.bytes), files, totalFiles: totals.files });
      },
      stop() {
        if (!release) return;
        bar.stop();
        release();
        release = undefined;
      },
    };
  }
  let last = 0;
  let totals = { bytes: 0, files: 0 };
  return {
    start(totalBytes, totalFiles) {
      totals = { bytes: totalBytes, files: totalFiles };
      log.info({ totalBytes, totalFiles }, `${what} started`);
    },
    update(bytes, files) {
      const now = Date.now();
      if (now - last < logEveryMs) return;
      last = now;
      log.info({ bytes, files, totalBytes: totals.bytes, totalFiles: totals.files }, `${what} progress`);
    },
    stop() {},
  };
}

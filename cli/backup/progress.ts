// Progress of long work: a bar (bytes and files) when stderr is a terminal, throttled log lines otherwise.
import cliProgress from 'cli-progress';
import type { Logger } from '../../shared/log.js';
import { formatBytes } from './report.js';

export interface Progress {
  start(totalBytes: number, totalFiles: number): void;
  /** Absolute figures so far. */
  update(bytes: number, files: number): void;
  stop(): void;
}

const logEveryMs = 2_000;

export function createProgress(log: Logger, what: string): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${what} [{bar}] {percentage}% | {done} of {total} | {files}/{totalFiles} files | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    let totals = { bytes: 0, files: 0 };
    return {
      start(totalBytes, totalFiles) {
        totals = { bytes: totalBytes, files: totalFiles };
        bar.start(Math.max(totalBytes, 1), 0, { done: formatBytes(0), total: formatBytes(totalBytes), files: 0, totalFiles });
      },
      update(bytes, files) {
        bar.update(Math.min(bytes, totals.bytes), { done: formatBytes(bytes), total: formatBytes(totals.bytes), files, totalFiles: totals.files });
      },
      stop: () => bar.stop(),
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

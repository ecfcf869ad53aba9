// The backup benchmark's charts (bench/backup.ts): how long the freeze lasts against the data size, and how many
// bytes a full and an incremental backup copy at each size.
import { join } from 'node:path';
import { groupedBars, pointsAndLines, writeSvg, type BarDatum, type PointDatum } from './charts.js';
import { median, round } from './stats.js';

/** What the charts need of one size's result (bench/backup.ts's SizeResult has it). */
export interface BackupSizeFigures {
  sizeMB: number;
  freeze: { runsMs: number[] };
  first: { bytes: number; copiedBytes: number };
  second: { copiedBytes: number };
  quietIncremental: { copiedBytes: number };
}

const bytesPerMB = 1e6;

/** Writes backup-freeze.svg and backup-copied.svg to dir; returns their paths. */
export async function writeBackupCharts(sizes: BackupSizeFigures[], dir: string, subtitle: string): Promise<string[]> {
  const points: PointDatum[] = [];
  const lines: PointDatum[] = [];
  for (const s of [...sizes].sort((a, b) => a.sizeMB - b.sizeMB)) {
    for (const ms of s.freeze.runsMs) points.push({ x: s.sizeMB, y: ms, series: 'each backup' });
    lines.push({ x: s.sizeMB, y: round(median(s.freeze.runsMs), 1), series: 'median' });
  }
  const xs = sizes.map((s) => s.sizeMB);
  const freezePath = join(dir, 'backup-freeze.svg');
  await writeSvg(
    freezePath,
    pointsAndLines({
      title: 'Backup freeze: how long writes are held, by data size',
      subtitle,
      points,
      lines,
      series: ['each backup', 'median'],
      xTitle: 'user data (MB)',
      yTitle: 'freeze (ms)',
      logX: Math.max(...xs) / Math.min(...xs) >= 10,
    }),
  );

  const bars: BarDatum[] = [];
  const series = ['full backup (the first)', 'after 1% of keys updated, writers ran before', 'after 1% of keys updated, nothing else ran'];
  for (const s of sizes) {
    const group = `${s.sizeMB} MB`;
    bars.push({ group, series: series[0]!, value: round(s.first.copiedBytes / bytesPerMB, 1) });
    bars.push({ group, series: series[1]!, value: round(s.second.copiedBytes / bytesPerMB, 1) });
    bars.push({ group, series: series[2]!, value: round(s.quietIncremental.copiedBytes / bytesPerMB, 1) });
  }
  const copiedPath = join(dir, 'backup-copied.svg');
  await writeSvg(
    copiedPath,
    groupedBars({
      title: 'Bytes copied by a full and an incremental backup',
      subtitle,
      data: bars,
      groups: [...sizes].sort((a, b) => a.sizeMB - b.sizeMB).map((s) => `${s.sizeMB} MB`),
      series,
      groupTitle: 'user data',
      valueTitle: 'MB copied (log scale)',
      log: true,
      labelFormat: ',.1f',
      width: Math.max(420, sizes.length * 200),
    }),
  );
  return [freezePath, copiedPath];
}

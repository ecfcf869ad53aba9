// The YCSB run's two charts: throughput per workload and system, and the latency CDF per workload. Apart from
// report.ts because drawing needs vega, which only the bench's own install (bench/package.json) has.
import { groupedBars, latencyCdf, writeSvg, type BarDatum, type CdfDatum } from '../charts.js';
import { displayName, type YcsbResults } from './report.js';

export async function writeCharts(results: YcsbResults, throughputPath: string, cdfPath: string): Promise<void> {
  const ran = results.systems.filter((s) => s.phases.length > 0);
  const series = ran.map((s) => displayName(s.name));
  const labels = results.options.workloads.map((w) => (w === 'load' ? 'load' : w.toUpperCase()));
  const bars: BarDatum[] = [];
  const cdf: CdfDatum[] = [];
  for (const s of ran) {
    for (const p of s.phases) {
      bars.push({ group: p.label, series: displayName(s.name), value: Math.round(p.opsPerSecond) });
      for (const point of p.cdf) cdf.push({ facet: `workload ${p.label}`, series: displayName(s.name), ms: point.ms, fraction: point.fraction });
    }
  }
  const o = results.options;
  const subtitle = `${o.keys.toLocaleString('en-US')} keys, ${o.valueBytes}-byte values, ${o.distribution}, ${o.concurrency} concurrent; ${results.machine.cores} cores; ${results.build}`;
  await writeSvg(
    throughputPath,
    groupedBars({ title: 'Throughput per YCSB workload', subtitle, data: bars, groups: labels, series, groupTitle: 'workload', valueTitle: 'ops/s (log scale)', log: true }),
  );
  await writeSvg(
    cdfPath,
    latencyCdf({ title: 'Latency CDF per workload', subtitle, data: cdf, facets: labels.map((l) => `workload ${l}`), series, columns: 2 }),
  );
}

// Charts for the benchmark reports, as SVG files the README and bench/RESULTS.md show: Vega-Lite specs
// compiled to Vega and rendered headless (no browser, no canvas: text widths are estimated).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

const schema = 'https://vega.github.io/schema/vega-lite/v6.json';
const font = 'Helvetica, Arial, sans-serif';
const config = {
  font,
  background: 'white',
  title: { fontSize: 14, anchor: 'start' as const, offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400 },
  header: { labelFontSize: 12, titleFontSize: 12 },
};

/** The SVG text of a Vega-Lite spec. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders a spec and writes it to path (its folder made if missing). */
export async function writeSvg(path: string, spec: TopLevelSpec): Promise<void> {
  const svg = await renderSvg(spec);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, svg);
}

/** A color per series, in the given order (Tableau 10). */
const palette = ['#4c78a8', '#72b7b2', '#e45756', '#f58518', '#54a24b', '#b279a2', '#eeca3b', '#ff9da6', '#9d755d', '#bab0ac'];
const colorOf = (series: readonly string[]) => ({ domain: [...series], range: palette.slice(0, series.length) });

export interface BarDatum {
  group: string;
  series: string;
  value: number;
}

/**
 * Grouped bars: one group per `group` along x, one bar per series in it, its value written on top.
 * With log: true the value axis is logarithmic (for figures that span orders of magnitude).
 */
export function groupedBars(options: {
  title: string;
  subtitle?: string;
  data: BarDatum[];
  groups: readonly string[];
  series: readonly string[];
  groupTitle: string;
  valueTitle: string;
  log?: boolean;
  /** d3-format of the labels on the bars (default ".3~s": 3 significant digits, "12.3k"). */
  labelFormat?: string;
  width?: number;
}): TopLevelSpec {
  const x = { field: 'group', type: 'nominal' as const, sort: [...options.groups], title: options.groupTitle, axis: { labelAngle: 0 } };
  const xOffset = { field: 'series', type: 'nominal' as const, sort: [...options.series] };
  const y = {
    field: 'value',
    type: 'quantitative' as const,
    title: options.valueTitle,
    axis: { format: '~s' },
    scale: options.log ? { type: 'log' as const } : { zero: true },
    stack: null, // side by side (xOffset), not stacked
  };
  return {
    $schema: schema,
    title: { text: options.title, ...(options.subtitle ? { subtitle: options.subtitle } : {}) },
    width: options.width ?? Math.max(360, options.groups.length * options.series.length * 34),
    height: 300,
    config,
    data: { values: options.data.filter((d) => Number.isFinite(d.value) && (!options.log || d.value > 0)) },
    layer: [
      { mark: { type: 'bar' }, encoding: { x, xOffset, y, color: { field: 'series', type: 'nominal', title: null, scale: colorOf(options.series), sort: [...options.series] } } },
      {
        mark: { type: 'text', dy: -6, fontSize: 9, angle: 0 },
        encoding: { x, xOffset, y, text: { field: 'value', type: 'quantitative', format: options.labelFormat ?? '.3~s' } },
      },
    ],
  } as TopLevelSpec;
}

export interface CdfDatum {
  facet: string;
  series: string;
  ms: number;
  /** The fraction of operations at or below ms, in [0, 1]. */
  fraction: number;
}

/** Latency CDFs: one panel per facet, one line per series, x logarithmic in ms. */
export function latencyCdf(options: {
  title: string;
  subtitle?: string;
  data: CdfDatum[];
  facets: readonly string[];
  series: readonly string[];
  columns?: number;
}): TopLevelSpec {
  return {
    $schema: schema,
    title: { text: options.title, ...(options.subtitle ? { subtitle: options.subtitle } : {}) },
    config,
    data: { values: options.data.filter((d) => d.ms > 0 && Number.isFinite(d.ms)) },
    facet: { field: 'facet', type: 'nominal', sort: [...options.facets], title: null, header: { labelFontWeight: 'bold' } },
    columns: options.columns ?? 2,
    spec: {
      width: 320,
      height: 220,
      mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency (ms, log scale)', axis: { format: '~g' } },
        y: { field: 'fraction', type: 'quantitative', scale: { domain: [0, 1] }, title: 'fraction of operations', axis: { format: '%' } },
        color: { field: 'series', type: 'nominal', title: null, scale: colorOf(options.series), sort: [...options.series] },
        order: { field: 'fraction', type: 'quantitative' },
      },
    },
  } as TopLevelSpec;
}

export interface PointDatum {
  x: number;
  y: number;
  series: string;
}

/** Points (e.g. every run) and lines through some of them (e.g. the median), x and y quantitative. */
export function pointsAndLines(options: {
  title: string;
  subtitle?: string;
  points: PointDatum[];
  lines: PointDatum[];
  series: readonly string[];
  xTitle: string;
  yTitle: string;
  logX?: boolean;
}): TopLevelSpec {
  const x = { field: 'x', type: 'quantitative' as const, title: options.xTitle, scale: options.logX ? { type: 'log' as const } : { zero: true } };
  const y = { field: 'y', type: 'quantitative' as const, title: options.yTitle, scale: { zero: true } };
  const color = { field: 'series', type: 'nominal' as const, title: null, scale: colorOf(options.series), sort: [...options.series] };
  return {
    $schema: schema,
    title: { text: options.title, ...(options.subtitle ? { subtitle: options.subtitle } : {}) },
    width: 420,
    height: 280,
    config,
    layer: [
      { data: { values: options.lines }, mark: { type: 'line', point: { filled: true, size: 70 }, strokeWidth: 2 }, encoding: { x, y, color } },
      { data: { values: options.points }, mark: { type: 'point', filled: false, size: 40, opacity: 0.8 }, encoding: { x, y, color } },
    ],
  } as TopLevelSpec;
}

// The Prometheus text exposition format (version 0.0.4) read back: what tests check the metrics endpoints with
// and what bench/ samples during a run. Strict: a line that is neither a comment nor a sample is an error.

export interface Sample { name: string; labels: Record<string, string>; value: number }

const floatOf = (text: string): number => {
  const lower = text.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower.endsWith('inf')) return lower.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
};

/** The samples of a Prometheus text exposition; throws on a line that is neither a comment nor a sample. */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    // A value is a Go float, as Prometheus parses it: NaN and Inf in any case (prom-client writes "Nan"); then an
    // optional timestamp.
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|nan|[+-]?inf)(?: -?[0-9]+)?$/i.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []) {
      const at = pair.indexOf('=');
      labels[pair.slice(0, at)] = JSON.parse(pair.slice(at + 1)) as string;
    }
    samples.push({ name: m[1]!, labels, value: floatOf(m[3]!) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels`. */
export const metricValue = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);

/** The text of GET /metrics at `address` (HOST:PORT), checked to be Prometheus text 0.0.4. */
export async function fetchMetricsText(address: string, timeoutMs = 5_000): Promise<string> {
  const response = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status}`);
  const type = response.headers.get('content-type') ?? '';
  if (!/^text\/plain; version=0\.0\.4/.test(type)) throw new Error(`GET /metrics: content-type ${type}, not Prometheus text 0.0.4`);
  return response.text();
}

/** GET /metrics at `address`, parsed. */
export const scrapeMetrics = async (address: string, timeoutMs = 5_000): Promise<Sample[]> => parsePrometheus(await fetchMetricsText(address, timeoutMs));

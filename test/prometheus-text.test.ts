// shared/prometheus-text.ts reads what Prometheus reads: Go floats (NaN and Inf in any case: prom-client writes
// "Nan" for an event-loop lag not measured yet), optional timestamps, escaped label values; anything else fails.
import t from 'tap';
import { metricValue, parsePrometheus } from '../shared/prometheus-text.js';

t.test('samples, labels and values as Prometheus parses them', async (t) => {
  const samples = parsePrometheus([
    '# HELP kv_x a counter',
    '# TYPE kv_x counter',
    'kv_x{role="daemon",code="ok"} 3',
    'kv_x{role="daemon",code="NOT_FOUND"} 2',
    'kv_lag{role="daemon"} Nan',
    'kv_small 1.5e-7',
    'kv_big +Inf',
    'kv_neg -Inf 1700000000000',
    'kv_quoted{path="a \\"b\\" c"} 1',
    '',
  ].join('\n'));
  t.equal(metricValue(samples, 'kv_x'), 5, 'a sum over every label set');
  t.equal(metricValue(samples, 'kv_x', { code: 'ok' }), 3, 'or over those with given labels');
  t.ok(Number.isNaN(samples.find((s) => s.name === 'kv_lag')!.value), 'Nan is NaN');
  t.equal(metricValue(samples, 'kv_small'), 1.5e-7);
  t.equal(metricValue(samples, 'kv_big'), Infinity);
  t.equal(metricValue(samples, 'kv_neg'), -Infinity, 'with a timestamp after it');
  t.same(samples.find((s) => s.name === 'kv_quoted')!.labels, { path: 'a "b" c' }, 'escaped quotes in a label value');
});

t.test('a line that is neither a comment nor a sample fails', async (t) => {
  t.throws(() => parsePrometheus('kv_x abc\n'), /not a Prometheus sample line: "kv_x abc"/);
  t.throws(() => parsePrometheus('kv_x{role="d"}\n'), /not a Prometheus sample line/, 'a sample without its value');
  t.throws(() => parsePrometheus('<html>\n'), /not a Prometheus sample line/);
});

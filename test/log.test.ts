// shared/log.ts: JSON lines when stderr is not a terminal, without loading pino-pretty; pretty lines on a terminal.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const logModule = join(dirname(fileURLToPath(import.meta.url)), '..', 'shared', 'log.js');

/** Makes a logger in a fresh process (stderr a pipe, or made to look like a terminal) and logs one line. */
function logOnce(asTerminal: boolean) {
  const script = `
    import { createRequire } from 'node:module';
    ${asTerminal ? 'process.stderr.isTTY = true;' : ''}
    const { createLogger } = await import(${JSON.stringify(logModule)});
    createLogger('log-test').info({ n: 1 }, 'hello');
    const loaded = Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/pino-pretty/'));
    process.stdout.write(JSON.stringify({ loaded }));
  `;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, KV_LOG_LEVEL: 'info' },
    timeout: 30_000,
  });
  t.equal(result.status, 0, result.status === 0 ? 'the process exits 0' : result.stderr);
  return { loaded: (JSON.parse(result.stdout) as { loaded: boolean }).loaded, stderr: result.stderr };
}

t.test('stderr not a terminal: a JSON line, and pino-pretty never loaded', async (t) => {
  const { loaded, stderr } = logOnce(false);
  t.equal(loaded, false, 'pino-pretty is not in the module cache');
  const line = JSON.parse(stderr.trim()) as Record<string, unknown>;
  t.match(line, { name: 'log-test', msg: 'hello', n: 1 });
});

t.test('stderr a terminal: pino-pretty loaded, a line for a person', async (t) => {
  const { loaded, stderr } = logOnce(true);
  t.equal(loaded, true, 'pino-pretty is in the module cache');
  t.match(stderr, /hello/);
  t.throws(() => JSON.parse(stderr.trim()), 'not a JSON line');
});

// The backup commands' edges as a user meets them: paths that cannot be made (/proc/nope) and dirs that do not
// exist, a bad --keep, what KV_LOG_LEVEL=debug shows of a backup, the bytes every backup copies anyway, and the
// progress bar on a real pseudo-terminal (script(1), util-linux). Real processes on loopback, temp dirs.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kv, kvScript, messageLines, startCluster, tempDir, waitFor } from './helpers/cluster.js';
import { backupManager, readSummary, slowRsyncPath } from './helpers/backup.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** One line on stderr, the exit code, no stack trace, and within a bounded time (no spinning mkdir). */
async function refusedAtOnce(t: TapTest, args: string[], code: number, line: RegExp) {
  const started = Date.now();
  const result = await kv(t, args);
  // A usage error's second line is the pointer to --help.
  const lines = messageLines(result.stderr).filter((l) => l !== '(kv --help for usage)');
  t.equal(result.code, code, `kv ${args.join(' ')} exits ${code} (stderr: ${result.stderr.slice(-300)})`);
  t.equal(lines.length, 1, `one line on stderr (${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', line, 'the line says what and why');
  t.notMatch(result.stderr, /^\s+at /m, 'no stack trace');
  t.notMatch(result.stderr, /INTERNAL/, 'not an internal error');
  // Generous: what it guards against is a recursive mkdir spinning for minutes, not a loaded machine's slow start
  // (20 s was missed with the suite's other tests running beside it).
  t.ok(Date.now() - started < 90_000, 'it does not spin');
}

t.test('paths that cannot be made fail at once with one line: backup-manager, daemon and coordinator under /proc', async (t) => {
  await refusedAtOnce(t, ['backup-manager', '--backup-dir', '/proc/nope', '--coordinator', '127.0.0.1:1'], 2,
    /^kv: cannot create the backup directory \/proc\/nope: .*\(ENOENT\)/);
  await refusedAtOnce(t, ['daemon', '--data', '/proc/nope/d1', '--listen-port', '0', '--coordinator', '127.0.0.1:1'], 2,
    /^kv: cannot create the data dir \/proc\/nope\/d1: .*\(ENOENT\)/);
  await refusedAtOnce(t, ['coordinator', '--data', '/proc/nope', '--port', '0'], 2,
    /^kv: cannot create the data dir \/proc\/nope: .*\(ENOENT\)/);
  await refusedAtOnce(t, ['backup', 'b1', '--out', '/proc/nope', '--coordinator', '127.0.0.1:1'], 2,
    /^kv: cannot create the --out directory \/proc\/nope/);
});

t.test('a bad --keep and missing backup dirs are usage errors, not internal ones', async (t) => {
  const root = tempDir(t, 'kv-backups-');
  for (const keep of ['0', '-1', '1.5', 'abc']) {
    await refusedAtOnce(t, ['backup-manager', '--backup-dir', root, '--keep', keep, '--coordinator', '127.0.0.1:1'], 2,
      /^kv: --keep must be a whole number of at least 1 \(BAD_REQUEST\)$/);
  }
  const missing = join(root, 'no-such-backup');
  await refusedAtOnce(t, ['verify-backup', missing], 2, /^kv: the backup .*no-such-backup does not exist \(BAD_REQUEST\)$/);
  await refusedAtOnce(t, ['list-backups', missing], 2, /^kv: the backup directory .*no-such-backup does not exist \(BAD_REQUEST\)$/);
  const empty = await kv(t, ['list-backups', root]);
  t.equal(empty.code, 0, 'list-backups of an existing directory with no backups exits 0');
});

t.test('KV_LOG_LEVEL=debug shows every step of a backup; the summary names what is always copied', async (t) => {
  const cluster = await startCluster(t, { daemons: 2, daemonArgs: ['--write-buffer-bytes', '65536'] });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('s', { partitions: 4 });
  // Enough that each daemon flushes table files (64 KiB write buffers): those are what a later backup links.
  for (let from = 0; from < 1500; from += 250) {
    await Promise.all(Array.from({ length: 250 }, (_, j) => client.put('s', `k${from + j}`, { pad: randomBytes(600).toString('base64') })));
  }
  const root = tempDir(t, 'kv-backups-');
  await backupManager(t, cluster.coordinator.address, root);

  const second = await kv(t, ['backup-manager', '--backup-dir', root, '--coordinator', cluster.coordinator.address], { KV_LOG_LEVEL: 'debug' });
  t.equal(second.code, 0, `the second backup exits 0 (${second.stderr.slice(-300)})`);
  const logs = second.stderr.split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as { msg: string; level: number; serverId?: string }];
    } catch {
      return [];
    }
  });
  const debug = logs.filter((l) => l.level === 20).map((l) => l.msg);
  for (const step of ['backup lock taken', 'asking the coordinator to freeze the cluster and snapshot every daemon', 'copying server',
    'copied; checking every file against the manifest', 'backup complete; releasing the snapshots on the daemons', 'snapshot release']) {
    t.ok(debug.includes(step), `a debug line: ${step}`);
  }
  const copied = readSummary(join(root, readFileSync(join(root, 'LATEST'), 'utf8').trim())).servers.map((x) => x.serverId).sort();
  const copyLines = logs.filter((l) => l.msg === 'copying server').map((l) => String(l.serverId)).sort();
  t.same(copyLines, copied, 'a "copying server" debug line for each daemon copied');

  // Nothing was written in between: every copied byte is one of those every backup copies.
  const summary = second.stdout;
  const match = /copied (\S+ \S+) \((\S+ \S+) of it always copied: write-ahead logs, MANIFEST, CURRENT\)/.exec(summary);
  t.ok(match, `the summary says what is always copied (${summary})`);
  t.equal(match?.[1], match?.[2], 'with no writes between backups, everything copied is what is always copied');
  const json = await backupManager(t, cluster.coordinator.address, root);
  t.ok(json.totals.alwaysCopiedBytes > 0, 'backup.json counts the always-copied bytes');
  t.equal(json.totals.copiedBytes, json.totals.alwaysCopiedBytes, 'and they are all it copied');
  t.ok(json.totals.linkedBytes > 0, 'the tables are hard-linked');
});

const hasScript = spawnSync('script', ['--version']).status === 0;

t.test('the progress bar on a terminal: sizes in its own words, log lines after it, the summary last', { skip: !hasScript && 'script(1) is not installed' }, async (t) => {
  const cluster = await startCluster(t, { daemons: 2, daemonArgs: ['--write-buffer-bytes', '65536'] });
  const client = await cluster.client({ timeoutMs: 30_000 });
  await client.addSpace('s', { partitions: 4 });
  for (let from = 0; from < 1000; from += 250) {
    await Promise.all(Array.from({ length: 250 }, (_, j) => client.put('s', `k${from + j}`, { pad: randomBytes(600).toString('base64') })));
  }
  const root = tempDir(t, 'kv-backups-');
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const command = [process.execPath, kvScript, 'backup-manager', '--backup-dir', root, '--coordinator', cluster.coordinator.address].map(quote).join(' ');
  // script gives the command a terminal for stdout and stderr both, and copies what it shows to our pipe.
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KV_LOG_LEVEL: 'info', PATH: slowRsyncPath(t) },
  });
  let screen = '';
  let code: number | null | undefined;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
  child.once('exit', (c) => (code = c));
  t.teardown(() => {
    if (code === undefined) child.kill('SIGKILL');
  });
  await waitFor('backup-manager on a terminal to finish', () => code !== undefined, 120_000);
  const plain = screen.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '');
  t.equal(code, 0, `it exits 0 (${plain.slice(-400)})`);

  const frames = [...plain.matchAll(/copying \[[^\]]*\] (\d+)% \| ([^|]+) of ([^|]+) \|/g)];
  t.ok(frames.length >= 2, `the bar is drawn as the copy goes (${frames.length} frames)`);
  t.ok(frames.every((f) => /^[\d.]+ (B|KiB|MiB|GiB)$/.test(f[3]!.trim())), `the total is a size, not a raw byte count (${frames.at(-1)?.[3]})`);
  t.equal(frames.at(-1)?.[1], '100', 'the last frame is at 100%');
  const lastFrame = plain.lastIndexOf('copying [');
  const copiedLog = plain.indexOf('server copied and checked');
  t.ok(copiedLog > lastFrame, 'log lines written during the copy come after the finished bar, not over it');
  const summary = plain.indexOf('complete in');
  t.ok(summary > copiedLog, 'the summary comes after the log lines');
  t.notMatch(plain.slice(summary), /INFO|WARN/, 'and nothing is written after the summary');
  t.notOk(plain.split(/[\r\n]/).some((line) => line.includes('copying [') && /INFO|WARN/.test(line)), 'no log line shares a line with the bar');
});

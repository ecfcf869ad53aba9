// The data commands as a script uses them, against a real cluster: kv put (from the command line, a file or
// stdin), put-if-not-exist, cond-put, atomic-add, get. Each outcome has its exit code (6 when a condition does not
// hold), and bad input is refused with one line before anything is sent, leaving the stored value as it was.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KvProcess, kv, kvScript, messageLines, startCluster, tempDir, type TestLike } from './helpers/cluster.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
type Result = { code: number | null; stdout: string; stderr: string };

const usageHint = '(kv --help for usage)';

function assertOneLine(t: TapTest, what: string, result: Result, code: number, pattern: RegExp) {
  t.equal(result.code, code, `${what}: exits ${code}`);
  const lines = messageLines(result.stderr).filter((line) => line !== usageHint);
  t.equal(lines.length, 1, `${what}: one line on stderr (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', pattern, `${what}: the line says ${pattern}`);
  t.notMatch(result.stderr, /^\s+at /m, `${what}: no stack trace`);
}

/** A kv command with `input` on its stdin. */
async function kvWithInput(t: TestLike, args: string[], input: string): Promise<Result> {
  const child = spawn(process.execPath, [kvScript, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const proc = new KvProcess(child);
  t.teardown(() => void (proc.exitCode === undefined && child.kill('SIGKILL')));
  child.stdin!.end(input);
  const code = await proc.exited;
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

t.test('put, put-if-not-exist, cond-put and atomic-add: stored values and exit codes', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  const c = ['-c', cluster.coordinator.address];
  const dir = tempDir(t);

  // A value over what one command-line argument may hold on Linux (128 KiB), from a file and from stdin.
  const big = { text: 'x'.repeat(300_000), n: 1 };
  const file = join(dir, 'big.json');
  writeFileSync(file, JSON.stringify(big));
  t.equal((await kv(t, ['put', 's', 'from-file', '--file', file, ...c])).code, 0, 'put --file exits 0');
  t.same(await client.get('s', 'from-file'), big, 'the file was stored');
  t.equal((await kvWithInput(t, ['put', 's', 'from-stdin', '--file', '-', ...c], JSON.stringify(big))).code, 0, 'put --file - exits 0');
  t.same(await client.get('s', 'from-stdin'), big, 'stdin was stored');

  const exists = await kv(t, ['put-if-not-exist', 's', 'from-file', '{"n":2}', ...c]);
  assertOneLine(t, 'put-if-not-exist of a present key', exists, 6, /key "from-file" in s.*exists.*\(CONDITION_FAILED\)$/);
  t.same(await client.get('s', 'from-file'), big, 'the present key is unchanged');
  t.equal((await kv(t, ['put-if-not-exist', 's', 'fresh', '{"n":2}', ...c])).code, 0, 'put-if-not-exist of an absent key exits 0');
  t.same(await client.get('s', 'fresh'), { n: 2 }, 'and stores it');

  const mismatch = await kv(t, ['cond-put', 's', 'fresh', '{"n":3}', '{"vip":true}', ...c]);
  assertOneLine(t, 'cond-put whose condition fails', mismatch, 6, /"n".*\(CONDITION_FAILED\)$/);
  t.same(await client.get('s', 'fresh'), { n: 2 }, 'a failed cond-put changes nothing');
  t.equal((await kv(t, ['cond-put', 's', 'fresh', '{"n":2}', '{"vip":true}', ...c])).code, 0, 'cond-put whose condition holds exits 0');
  t.same(await client.get('s', 'fresh'), { n: 2, vip: true }, 'and merges the attributes');
  const absent = await kv(t, ['cond-put', 's', 'nobody', '{"n":2}', '{"vip":true}', ...c]);
  assertOneLine(t, 'cond-put of an absent key', absent, 6, /\(CONDITION_FAILED\)$/);

  const added = await kv(t, ['atomic-add', 's', 'fresh', '{"n":10,"visits":1}', ...c]);
  t.equal(added.code, 0, 'atomic-add exits 0');
  t.same(JSON.parse(added.stdout), { n: 12, vip: true, visits: 1 }, 'atomic-add prints the new value');
  t.same(await client.get('s', 'fresh'), { n: 12, vip: true, visits: 1 }, 'and stored it');

  // Bytes as {"$bytes": base64}, both ways.
  t.equal((await kv(t, ['put', 's', 'bytes', '{"b":{"$bytes":"AAEC/w=="}}', ...c])).code, 0);
  t.same(await client.get('s', 'bytes'), { b: Buffer.from([0, 1, 2, 255]) }, 'bytes are stored as bytes');
  t.same(JSON.parse((await kv(t, ['get', 's', 'bytes', ...c])).stdout), { b: { $bytes: 'AAEC/w==' } }, 'and printed back as base64');
});

t.test('bad input to the data commands: exit 2, one line, nothing stored', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 });
  await client.put('s', 'k', { n: 1 });
  const c = ['-c', cluster.coordinator.address];
  const dir = tempDir(t);
  const file = join(dir, 'v.json');
  writeFileSync(file, '{"n":2}');
  const cases: Array<{ what: string; args: string[]; pattern: RegExp }> = [
    { what: '$bytes that is not base64', args: ['put', 's', 'k', '{"n":{"$bytes":"!!notbase64"}}'], pattern: /"n".*base64/ },
    { what: '$bytes with bits past its last byte', args: ['put', 's', 'k', '{"n":{"$bytes":"QR=="}}'], pattern: /base64/ },
    { what: '$bytes that is not a string', args: ['put', 's', 'k', '{"n":{"$bytes":5}}'], pattern: /base64/ },
    { what: 'fields beside $bytes', args: ['put', 's', 'k', '{"n":{"$bytes":"QQ==","more":1}}'], pattern: /"more"/ },
    { what: 'an object that is not $bytes', args: ['put', 's', 'k', '{"n":{"x":1}}'], pattern: /"n"/ },
    { what: 'a value and --file', args: ['put', 's', 'k', '{"n":2}', '--file', file], pattern: /not both/ },
    { what: 'no value at all', args: ['put', 's', 'k'], pattern: /--file/ },
    { what: 'a --file that does not exist', args: ['put', 's', 'k', '--file', join(dir, 'absent.json')], pattern: /absent\.json: no such file/ },
    { what: 'a --file that is a directory', args: ['put', 's', 'k', '--file', dir], pattern: /directory/ },
    { what: 'a --file without end', args: ['put', 's', 'k', '--file', '/dev/zero'], pattern: /over \d+ bytes/ },
    { what: 'a --file that is not JSON', args: ['put', 's', 'k', '--file', kvScript], pattern: /not JSON/ },
    { what: 'a cond-put condition that is not JSON', args: ['cond-put', 's', 'k', '{n:1}', '{"n":2}'], pattern: /condition is not JSON/ },
    { what: 'an atomic-add of a string', args: ['atomic-add', 's', 'k', '{"n":"one"}'], pattern: /"n".*numbers/ },
    { what: 'an atomic-add of no object', args: ['atomic-add', 's', 'k', '[1]'], pattern: /JSON object/ },
    { what: 'put-if-not-exist of bad bytes', args: ['put-if-not-exist', 's', 'k2', '{"b":{"$bytes":"%%"}}'], pattern: /base64/ },
  ];
  const results = await Promise.all(cases.map((x) => kv(t, [...x.args, ...c])));
  cases.forEach((x, i) => assertOneLine(t, x.what, results[i]!, 2, x.pattern));
  t.same(await client.get('s', 'k'), { n: 1 }, 'the stored value is unchanged');
  t.equal(await client.get('s', 'k2'), undefined, 'nothing new was stored');
  t.equal(await client.count('s'), 1, 'the space holds the one key');
});

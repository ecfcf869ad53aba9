// kv up --coordinators 3 --etcd: a local replicated set on an etcd the operator runs. The hint it prints works
// pasted into a shell; show-config names three coordinators, one leading; killing the leader, kv up starts it
// again and another leads meanwhile; Ctrl-C stops everything.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePortRange, kv, messageLines, runKvProcess, tempDir, waitFor } from './helpers/cluster.js';
import { startEtcd } from './helpers/etcd.js';
import { askLeader } from './helpers/replicated.js';

t.test('kv up --coordinators 3 --etcd starts a replicated set', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.close());
  const port = await freePortRange(3);
  const daemonPort = await freePortRange(3);
  const dir = join(tempDir(t), 'kv-data');
  const up = runKvProcess(t, ['up', '--dir', dir, '--coordinators', '3', '--etcd', etcd.endpoints.join(','), '--prefix', '/kv/up-test', '--port', String(port), '--daemon-port', String(daemonPort)]);
  await waitFor('kv up to report the cluster up', () => {
    if (up.exitCode !== undefined) throw new Error(`kv up exited with ${up.exitCode}: ${up.stderr.slice(-500)}`);
    return up.stdout.includes('is up');
  }, 90_000);
  const addresses = [0, 1, 2].map((i) => `127.0.0.1:${port + i}`);
  t.equal(up.stdout.match(/^ {2}coordinator 127\.0\.0\.1:\d+$/gm)?.length, 3, 'it lists three coordinators');
  t.match(up.stdout, `config in etcd ${etcd.endpoints.join(',')} under /kv/up-test`);
  const hint = up.stdout.split('\n').find((line) => line.startsWith('try: '))!.slice('try: '.length);
  t.match(hint, `-c ${addresses.join(',')}`, 'the hint gives every coordinator');
  const pasted = await promisify(execFile)('sh', ['-c', hint], { env: { ...process.env, KV_COORDINATOR: '' } });
  t.same(JSON.parse(pasted.stdout.trim().split('\n').pop()!), { name: 'Ada' }, 'pasted, it stores and reads a value');

  const shown = await kv(t, ['show-config', '-c', addresses.join(',')]);
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, /^coordinators \(3\)$/m, 'show-config lists three coordinators');
  t.equal(shown.stdout.match(/ leader \(epoch \d+\)$/gm)?.length, 1, 'one of them leading');
  t.match(shown.stdout, /^store etcd /m);

  const answers = await Promise.all(addresses.map(askLeader));
  const leading = answers.findIndex((a) => a?.leading);
  t.ok(leading >= 0, 'a coordinator says it leads');
  const pid = up.logs.find((l) => l.name === 'coordinator' && l.port === port + leading && l.msg === 'listening')?.pid as number;
  process.kill(pid, 'SIGKILL');
  await waitFor('kv up to start the killed coordinator again, and another to lead', async () => {
    const now = await Promise.all(addresses.map(askLeader));
    return now.every((a) => a !== undefined) && now.filter((a) => a?.leading).length === 1 && !now[leading]!.leading;
  }, 60_000);
  t.pass('the killed leader is started again, as a follower, and another leads');
  const after = await kv(t, ['get', 'users', 'ada', '-c', addresses.join(',')]);
  t.same(JSON.parse(after.stdout), { name: 'Ada' }, 'the value is still there');

  up.child.kill('SIGINT');
  t.equal(await up.waitForExit(60_000), 0, 'Ctrl-C stops it, exit 0');
});

t.test('kv up --coordinators 3 without --etcd is refused in one line', async (t) => {
  const r = await kv(t, ['up', '--coordinators', '3', '--dir', join(tempDir(t), 'x')]);
  t.equal(r.code, 2);
  t.match(messageLines(r.stderr), [/--coordinators above 1 needs --etcd/]);
});

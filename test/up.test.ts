// kv up: the README's first command. Started and stopped by the test, then started again on the same data; a
// second one on the same data; a daemon killed under it; kv up itself killed.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '../shared/client.js';
import { scrapeMetrics } from '../shared/prometheus-text.js';
import { freePortRange, kv, messageLines, runKvProcess, tempDir, waitFor, type KvProcess } from './helpers/cluster.js';

/** kv up's arguments on ports free right now (it takes fixed ports, as an operator would give it). */
async function upArgs(dir: string, daemons: number, extra: string[] = []) {
  const port = await freePortRange(1);
  const daemonPort = await freePortRange(daemons);
  return { port, daemonPort, args: ['up', '--dir', dir, '--daemons', String(daemons), '--port', String(port), '--daemon-port', String(daemonPort), ...extra] };
}

const isUp = (proc: KvProcess) => waitFor('kv up to report the cluster up', () => {
  if (proc.exitCode !== undefined) {
    // What an operator would read: its one-line reason and the warnings and errors its processes logged.
    const said = [...messageLines(proc.stderr), ...proc.logs.filter((l) => Number(l.level) >= 40).map((l) => JSON.stringify(l))];
    throw new Error(`kv up exited with ${proc.exitCode}: ${said.join(' | ').slice(0, 2000)}`);
  }
  return proc.stdout.includes('is up');
}, 60_000);

/** The pid of the daemon of kv up listening on `port`, from its log. */
const daemonPid = (proc: KvProcess, port: number) =>
  waitFor(`the daemon on port ${port} to log`, () => proc.logs.find((l) => l.name === 'daemon' && l.msg === 'listening' && l.port === port)?.pid as number | undefined);

const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

t.test('kv up starts a cluster, stops it on SIGINT, and picks up the same data again', async (t) => {
  const dir = join(tempDir(t), 'kv-data');
  const metricsPort = await freePortRange(4);
  const { port, args } = await upArgs(dir, 3, ['--metrics-port', String(metricsPort)]);
  const coordinator = `127.0.0.1:${port}`;

  const first = runKvProcess(t, args);
  await isUp(first);
  t.match(first.stdout, /coordinator 127\.0\.0\.1:\d+/, 'it says where the coordinator is');
  t.equal(first.stdout.match(/^ {2}daemon \d+ /gm)?.length, 3, 'and lists three daemons');
  t.match(first.stdout, `metrics on 127.0.0.1 ports ${metricsPort}..${metricsPort + 3}`, 'and where its metrics are');
  const roles = await Promise.all([0, 1, 2, 3].map(async (i) => (await scrapeMetrics(`127.0.0.1:${metricsPort + i}`)).find((s) => s.name === 'kv_process_cpu_seconds_total')?.labels.role));
  t.same(roles, ['coordinator', 'daemon', 'daemon', 'daemon'], 'the coordinator on the first metrics port, the daemons on the next');

  // The hint works when pasted into a shell (kv is not on the test's PATH; the port is not the default).
  const hint = first.stdout.split('\n').find((line) => line.startsWith('try: '))!.slice('try: '.length);
  t.match(hint, `-c ${coordinator}`, 'the hint names the coordinator');
  const pasted = await promisify(execFile)('sh', ['-c', hint], { env: { ...process.env, KV_COORDINATOR: '' } });
  t.same(JSON.parse(pasted.stdout.trim().split('\n').pop()!), { name: 'Ada' }, 'and, pasted, stores and reads a value');

  // A second kv up on the same data and ports refuses, saying nothing about the cluster that is not its own.
  const second = runKvProcess(t, args);
  t.equal(await second.exited, 1, 'a second kv up on the same data dir fails');
  t.equal(second.stdout, '', 'and prints nothing on stdout');
  t.match(messageLines(second.stderr), [/in use by another process.*\(DATA_DIR_LOCKED\)$/], 'but one line saying why');
  t.equal(messageLines(second.stderr).length, 1);

  const client = await Client.connect(coordinator);
  await client.addSpace('kept', { partitions: 6 });
  await Promise.all(Array.from({ length: 100 }, (_, i) => client.put('kept', `k${i}`, { i })));
  const clusterId = client.currentConfig.clusterId;
  await client.close();

  first.child.kill('SIGINT');
  t.equal(await first.exited, 0, 'Ctrl-C stops the cluster with exit 0');
  t.match(first.stderr, /all processes stopped/);

  const again = runKvProcess(t, args);
  await isUp(again);
  t.match(again.stdout, new RegExp(`cluster ${clusterId} is up`), 'the same cluster');
  const reader = await Client.connect(coordinator);
  t.equal(await reader.count('kept'), 100, 'with all its data');
  t.same(await reader.get('kept', 'k42'), { i: 42 });
  await reader.close();
  again.child.kill('SIGTERM');
  t.equal(await again.exited, 0, 'SIGTERM stops it too');
});

t.test('a daemon killed under kv up is started again while the others serve', async (t) => {
  const dir = join(tempDir(t), 'kv-data');
  const { port, daemonPort, args } = await upArgs(dir, 3);
  const up = runKvProcess(t, args);
  await isUp(up);
  const client = await Client.connect(`127.0.0.1:${port}`, { timeoutMs: 20_000 });
  t.teardown(() => client.close());
  await client.addSpace('orders', { partitions: 6, tolerate: 1 });
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.put('orders', `o${i}`, { i })));

  const victim = await daemonPid(up, daemonPort + 1);
  const serverId = up.logs.find((l) => l.pid === victim && l.msg === 'registered with the coordinator')?.serverId;
  process.kill(victim, 'SIGKILL');
  await up.waitForLog('a cluster process exited; starting it again');
  // Meanwhile, and after, every key reads and writes: its chains carry on without it.
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.put('orders', `o${i + 50}`, { i: i + 50 })));
  const restarted = await up.waitForLog('started again', 30_000);
  t.equal(restarted.process, 'daemon-2', 'the dead daemon is started again');
  t.equal(restarted.server, serverId, 'as the same server');
  const values = await Promise.all(Array.from({ length: 100 }, (_, i) => client.get('orders', `o${i}`)));
  t.equal(values.filter((v, i) => v?.i !== i).length, 0, 'every write before and after is there');
  await waitFor('three daemons available again', async () => (await client.showConfig()).servers.filter((s) => s.state === 'available').length === 3, 30_000);
  t.equal(up.exitCode, undefined, 'kv up kept running');
  t.equal(await up.stop('SIGTERM'), 0);
});

t.test('the coordinator killed under kv up is started again, and its daemon registers again', async (t) => {
  const dir = join(tempDir(t), 'kv-data');
  const { port, args } = await upArgs(dir, 1);
  const up = runKvProcess(t, args);
  await isUp(up);
  const client = await Client.connect(`127.0.0.1:${port}`, { timeoutMs: 30_000 });
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 2 });
  const coordinator = up.logs.find((l) => l.name === 'coordinator' && l.msg === 'listening')!.pid as number;
  process.kill(coordinator, 'SIGKILL');
  const restarted = await up.waitForLog('started again', 30_000);
  t.equal(restarted.process, 'coordinator');
  await waitFor('the daemon to register again', () => up.logs.filter((l) => l.msg === 'registered with the coordinator').length >= 2, 30_000);
  await client.put('s', 'k', { after: true });
  t.same(await client.get('s', 'k'), { after: true }, 'the cluster serves writes again');
  t.equal(await up.stop('SIGTERM'), 0);
});

t.test('kv up gives a process up after its restarts, and stops the cluster', async (t) => {
  const dir = join(tempDir(t), 'kv-data');
  const { daemonPort, args } = await upArgs(dir, 1, ['--restarts-max', '0']);
  const up = runKvProcess(t, args);
  await isUp(up);
  process.kill(await daemonPid(up, daemonPort), 'SIGKILL');
  t.equal(await up.exited, 1, 'kv up exits 1');
  t.match(messageLines(up.stderr), [/^kv: daemon-1 was killed by SIGKILL after 0 restarts within 60 s; kv up stopped the cluster$/]);
  t.ok(up.logs.some((l) => l.name === 'coordinator' && l.msg === 'stopped'), 'after stopping the coordinator');
});

t.test('a killed kv up leaves no process behind', async (t) => {
  const dir = join(tempDir(t), 'kv-data');
  const { args } = await upArgs(dir, 2);
  const up = runKvProcess(t, args);
  await isUp(up);
  const children = [...new Set(up.logs.filter((l) => l.msg === 'listening').map((l) => l.pid as number))];
  t.equal(children.length, 3, 'a coordinator and two daemons');
  t.teardown(() => children.filter((pid) => !gone(pid)).forEach((pid) => process.kill(pid, 'SIGKILL')));
  up.child.kill('SIGKILL');
  await waitFor('every child of kv up to exit', () => children.every(gone), 30_000);
  const stopped = up.logs.filter((l) => l.msg === 'stopped').map((l) => l.pid);
  t.same(new Set(stopped), new Set(children), 'each stopped gracefully');
});

t.test("kv up's own flags are usage errors: exit 2, one line", async (t) => {
  for (const flags of [['--daemons', '0'], ['--restarts-max', '-1']]) {
    const result = await kv(t, ['up', '--dir', join(tempDir(t), 'kv-data'), ...flags]);
    t.equal(result.code, 2, `${flags.join(' ')}: exit 2`);
    t.match(messageLines(result.stderr)[0], new RegExp(`^kv: ${flags[0]} must be a whole number`), 'saying which flag');
  }
});

// kv up: the README's first command. Started and stopped by the test, then started again on the same data.
import t from 'tap';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Client } from '../shared/client.js';
import { runKvProcess, tempDir, waitFor } from './helpers/cluster.js';

/** Ports the OS says are free right now (kv up takes fixed ports, as an operator would give it). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<import('node:net').Server>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

t.test('kv up starts a cluster, stops it on SIGINT, and picks up the same data again', async (t) => {
  const dir = join(tempDir(t), 'kv-data');
  const [port, daemonPort] = await freePorts(2);
  // Daemon ports follow the first one; make sure they are contiguous and free enough for this test.
  const args = ['up', '--dir', dir, '--daemons', '3', '--port', String(port), '--daemon-port', String(daemonPort! + 100)];
  const coordinator = `127.0.0.1:${port}`;

  const first = runKvProcess(t, args);
  await waitFor('kv up to report the cluster up', () => first.stdout.includes('is up'), 30_000);
  t.match(first.stdout, /coordinator 127\.0\.0\.1:\d+/, 'it says where the coordinator is');
  t.equal(first.stdout.match(/^ {2}daemon \d+ /gm)?.length, 3, 'and lists three daemons');

  const client = await Client.connect(coordinator);
  await client.addSpace('kept', { partitions: 6 });
  await Promise.all(Array.from({ length: 100 }, (_, i) => client.put('kept', `k${i}`, { i })));
  const clusterId = client.currentConfig.clusterId;
  await client.close();

  first.child.kill('SIGINT');
  t.equal(await first.exited, 0, 'Ctrl-C stops the cluster with exit 0');
  t.match(first.stderr, /all processes stopped/);

  const second = runKvProcess(t, args);
  await waitFor('kv up to come up again', () => second.stdout.includes('is up'), 30_000);
  t.match(second.stdout, new RegExp(`cluster ${clusterId} is up`), 'the same cluster');
  const again = await Client.connect(coordinator);
  t.equal(await again.count('kept'), 100, 'with all its data');
  t.same(await again.get('kept', 'k42'), { i: 42 });
  await again.close();
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0, 'SIGTERM stops it too');
});

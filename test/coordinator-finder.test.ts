// shared/coordinator-finder.ts: clients, daemons and kv commands given a list of coordinators use the one that
// leads: past dead entries, to the leader a follower names, to the new leader when theirs steps down; and when none
// leads, one line naming every address. Real coordinators and daemons; the followers are stand-ins
// (test/helpers/stepping-down.ts) until coordinators are replicated.
import t from 'tap';
import { parseCoordinators } from '../shared/coordinator-finder.js';
import { Client } from '../shared/client.js';
import { KvError } from '../shared/errors.js';
import { closedAddress, kv, messageLines, startCluster, startDaemon, waitFor } from './helpers/cluster.js';
import { SteppingDown } from './helpers/stepping-down.js';

t.test('a list of coordinators is parsed: default port, duplicates removed, a bad entry named', async (t) => {
  t.same(parseCoordinators('a:1982,b:1982,[::1]:1983'), ['a:1982', 'b:1982', '[::1]:1983']);
  t.same(parseCoordinators('a,b:7,a:1982, b:7 '), ['a:1982', 'b:7'], 'a port left out is 1982; the same address twice counts once');
  t.same(parseCoordinators(['10.0.0.1:1', '10.0.0.2:2,10.0.0.3:3']), ['10.0.0.1:1', '10.0.0.2:2', '10.0.0.3:3'], 'several strings, each a list');
  t.same(parseCoordinators('h,[::1]', 2000), ['h:2000', '[::1]:2000'], 'the default port given');
  const bad: Array<[string, RegExp]> = [
    ['', /entry 1 of the coordinator list is empty/],
    ['a:1,,b:2', /entry 2 in the coordinator list "a:1,,b:2" is empty/],
    ['a:1,', /entry 2 in the coordinator list "a:1," is empty/],
    ['a:1,no:such:address', /"no:such:address" is not an address.* in the coordinator list "a:1,no:such:address"/],
    ['a:99999', /"a:99999" is not an address/],
  ];
  for (const [list, pattern] of bad) {
    t.throws(() => parseCoordinators(list), { code: 'BAD_REQUEST', message: pattern }, `"${list}" is refused`);
  }
});

t.test('past dead entries: a client, a daemon and kv commands use the live coordinator', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const live = cluster.coordinator.address;
  const dead = await closedAddress();
  const list = `${dead},${live}`;

  const client = await Client.connect(list, { timeoutMs: 10_000 });
  t.teardown(() => client.close());
  t.equal(client.coordinatorAddress, live, 'the client is connected to the live one');
  t.same(client.coordinatorAddresses, [dead, live], 'and knows the whole list');
  await client.addSpace('s', { partitions: 2 });
  await client.put('s', 'k', { a: 1 });
  t.same(await client.get('s', 'k'), { a: 1 }, 'and works');

  const daemon = await startDaemon(t, list);
  const registered = daemon.proc.logs.find((l) => l.msg === 'registered with the coordinator');
  t.equal(registered?.coordinator, live, 'the daemon registered with the live one, and its log says which');
  await cluster.waitForAvailable(2);

  const shown = await kv(t, ['show-config', '-c', list]);
  t.equal(shown.code, 0, `kv show-config -c dead,live exits 0 (stderr: ${shown.stderr})`);
  t.match(shown.stdout, daemon.serverId, 'and shows the cluster');
  const counted = await kv(t, ['count', 's'], { KV_COORDINATOR: list });
  t.equal(counted.code, 0, '$KV_COORDINATOR takes a list too');
  t.equal(counted.stdout.trim(), '1');
});

t.test('a follower sends clients to the leader it names, one in the list or not', async (t) => {
  const cluster = await startCluster(t, { daemons: 1 });
  const live = cluster.coordinator.address;
  const follower = await SteppingDown.follower(t, live);
  const client = await Client.connect(follower.address, { subscribe: false });
  t.teardown(() => client.close());
  t.equal(client.coordinatorAddress, live, 'the client went to the leader named, which its list lacks');
  t.equal((await client.showConfig()).servers.length, 1);
  const shown = await kv(t, ['show-config', '-c', `${follower.address},${live}`, '--json']);
  t.equal(shown.code, 0, `kv show-config past a follower exits 0 (stderr: ${shown.stderr})`);
});

t.test('a leader that steps down: the client and the daemon go to the new leader', async (t) => {
  const cluster = await startCluster(t, { daemons: 1, heartbeat: { intervalMs: 200, timeoutMs: 3_000 } });
  const live = cluster.coordinator.address;
  const leader = await SteppingDown.start(t, live);
  const client = await Client.connect(leader.address, { timeoutMs: 10_000 });
  t.teardown(() => client.close());
  t.equal(client.coordinatorAddress, leader.address, 'the client is with the leader that will step down');
  const daemon = await startDaemon(t, leader.address);
  t.equal(daemon.proc.logs.find((l) => l.msg === 'registered with the coordinator')?.coordinator, leader.address, 'so is the daemon');
  await cluster.waitForAvailable(2);

  leader.stepDown();
  const config = await client.addSpace('after', { partitions: 2 });
  t.ok(config.spaces.some((s) => s.name === 'after'), 'an admin request answered NOT_LEADER went to the new leader');
  t.equal(client.coordinatorAddress, live, 'which the client now uses');
  await client.put('after', 'k', { v: 1 });
  t.same(await client.get('after', 'k'), { v: 1 }, 'and data operations go on');

  await daemon.proc.waitForLog('the coordinator no longer leads; registering with the leader');
  await waitFor('the daemon registered with the new leader', () =>
    daemon.proc.logs.some((l) => l.msg === 'registered with the coordinator' && l.coordinator === live));
  await cluster.waitForAvailable(2);
  t.pass('the daemon is available again, registered with the new leader');
});

t.test('nobody leads: one UNAVAILABLE line naming every address and why, within the timeout', async (t) => {
  const dead = await closedAddress();
  const orphan = await SteppingDown.follower(t, null);
  const started = performance.now();
  const error = await Client.connect(`${dead},${orphan.address}`, { timeoutMs: 2_000 }).then(
    () => undefined,
    (e: KvError) => e,
  );
  const ms = performance.now() - started;
  t.equal(error?.code, 'UNAVAILABLE');
  t.match(error?.message ?? '', new RegExp(`^no leading coordinator among 2: cannot connect to ${dead}: nothing listens there \\(ECONNREFUSED\\); ${orphan.address} does not lead and knows no leader`));
  t.ok(ms >= 1_500, `an election is waited out: it asked again until near the deadline (${Math.round(ms)} ms)`);
  t.ok(ms < 2_000 + 1_000, `and gave up by the deadline (${Math.round(ms)} ms)`);

  const allDead = await kv(t, ['show-config', '-c', `${dead},${await closedAddress()}`, '--timeout-ms', '5000']);
  t.equal(allDead.code, 3, 'every address dead: exit 3');
  const lines = messageLines(allDead.stderr);
  t.equal(lines.length, 1, `one line (got ${JSON.stringify(lines)})`);
  t.match(lines[0] ?? '', new RegExp(`^kv: no leading coordinator among 2: cannot connect to ${dead}: .*ECONNREFUSED.*; cannot connect to 127\\.0\\.0\\.1:\\d+: .*ECONNREFUSED.*\\(UNAVAILABLE\\)$`));
});

t.test('a bad entry in the list: exit 2 naming it, for kv commands and the daemon', async (t) => {
  const [command, daemon, empty] = await Promise.all([
    kv(t, ['show-config', '-c', '127.0.0.1:1982,no:such:address']),
    kv(t, ['daemon', '--listen-port', '0', '--data', '/nonexistent-kv-dir', '-c', '127.0.0.1:1982,no:such:address']),
    kv(t, ['count', 's'], { KV_COORDINATOR: '127.0.0.1:1982,,127.0.0.1:1983' }),
  ]);
  for (const [what, result, pattern] of [
    ['kv show-config', command, /"no:such:address" is not an address/],
    ['kv daemon', daemon, /"no:such:address" is not an address/],
    ['an empty entry in $KV_COORDINATOR', empty, /entry 2 in the coordinator list "127\.0\.0\.1:1982,,127\.0\.0\.1:1983" is empty/],
  ] as const) {
    t.equal(result!.code, 2, `${what}: exit 2`);
    t.match(messageLines(result!.stderr)[0] ?? '', pattern, `${what}: the line names the entry`);
  }
  const help = await kv(t, ['show-config', '--help']);
  t.match(help.stdout, 'HOST:PORT[,HOST:PORT...]', '--help says it takes a list');
});

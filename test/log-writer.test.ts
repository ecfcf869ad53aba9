// Every log line says which process wrote it: JSON lines carry the daemon's serverId and each process's port;
// pretty lines (a terminal, as under kv up) name the writer in parentheses.
import t from 'tap';
import { prettyFactory } from 'pino-pretty';
import { writerPrettifiers } from '../shared/log-writer.js';
import { startCluster } from './helpers/cluster.js';

t.test('JSON lines of a daemon carry its serverId and port, those of a coordinator its port', async (t) => {
  const cluster = await startCluster(t, { daemons: 2 });
  const client = await cluster.client();
  await client.addSpace('s', { partitions: 4 }); // lines after registration, on both sides
  for (const daemon of cluster.daemons) {
    const lines = daemon.proc.logs;
    const fromListening = lines.slice(lines.findIndex((l) => l.msg === 'listening'));
    t.ok(fromListening.length >= 2, 'the daemon logged');
    t.ok(fromListening.every((l) => l.port === daemon.port), 'every daemon line from listening on carries its port');
    const fromRegistered = lines.slice(lines.findIndex((l) => l.msg === 'registered with the coordinator'));
    t.ok(fromRegistered.every((l) => l.serverId === daemon.serverId), 'and from its registration on its server id');
  }
  const coordinator = cluster.coordinator.proc.logs;
  t.ok(coordinator.slice(coordinator.findIndex((l) => l.msg === 'listening')).every((l) => l.port === cluster.coordinator.port), 'every coordinator line carries its port');
  t.ok(coordinator.some((l) => l.msg === 'daemon registered' && l.serverId === cluster.daemons[0]!.serverId), 'its serverId fields are about daemons');
});

t.test('pretty lines name the writer, and do not repeat what names it', async (t) => {
  const pretty = prettyFactory({ colorize: false, ignore: 'pid,hostname,time', customPrettifiers: writerPrettifiers });
  const line = (fields: Record<string, unknown>) => pretty(JSON.stringify({ level: 30, time: 0, pid: 1, ...fields }));
  t.equal(line({ name: 'daemon', serverId: '7', port: 2012, msg: 'listening', address: '127.0.0.1:2012' }).trim(), 'INFO (daemon 7 :2012): listening\n    address: "127.0.0.1:2012"');
  t.equal(line({ name: 'daemon', port: 2012, msg: 'cannot register; retrying' }).trim(), 'INFO (daemon :2012): cannot register; retrying', 'before the daemon has its id');
  t.equal(line({ name: 'coordinator', port: 1982, serverId: '7', msg: 'daemon registered' }).trim(), 'INFO (coordinator :1982): daemon registered\n    serverId: "7"', "a coordinator's serverId is about a daemon");
  t.equal(line({ name: 'up', msg: 'all processes stopped' }).trim(), 'INFO (up): all processes stopped');
});

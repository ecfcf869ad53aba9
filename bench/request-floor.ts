// What a read costs a server built the way kv's daemons are, before kv does anything: the floor under kv's
// servers' CPU per operation in the YCSB table.
//
//   node dist/bench/request-floor.js [--seconds 5] [--rounds 3] [--generators 2] [--inflight 64] [--servers ws,kv-link,daemon] [--cpu-prof DIR] [--json]
//   npm run bench -- request-floor
//
// Servers, each in a process of its own, one at a time, in alternating rounds:
//   ws        a ws server that unpacks each message (msgpackr) and answers each frame with a fixed value packed
//             into one message: WebSocket framing, Node's streams and the kernel's loopback, nothing of kv's;
//   kv-link   the same answers through kv's own Connection (shared/connection.ts: every frame checked against its
//             TypeBox schema, answers coalesced into messages as the daemons do);
//   daemon    a real kv daemon (with a coordinator, one space of 4 partitions, tolerate 0) answering `get`s of
//             keys it holds: everything a read costs in kv (routing, the read lease, LevelDB's getSync, the stored
//             value unpacked).
// The generators (forked, --inflight split over them) use kv's Connection and send the daemon's `get` frames to
// each, 100-byte values. Printed: requests/s, the server's CPU µs per request (from /proc, every thread), the
// generators' CPU µs per request, frames per message on the server, medians of the rounds.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import { WebSocketServer } from 'ws';
import { Connection } from '../shared/connection.js';
import { listen } from '../shared/listen.js';
import { Client } from '../shared/client.js';
import { daemonPath } from '../shared/protocol.js';
import { childrenOf, kvProcessName, procStat } from './proc-cpu.js';
import { describeMachine, machine, median, round } from './stats.js';
import { freePorts, startCluster, stopCluster, waitUntilUp } from './cluster.js';

const self = fileURLToPath(import.meta.url);
const value = { field0: 'v'.repeat(100) };
const space = 'floor';
const keys = 10_000;
const keyOf = (i: number) => `user${i % keys}`;

interface GeneratorArgs { role: 'generator'; address: string; path: string; inflight: number; seconds: number; version: number }
interface Counts { requests: number; cpuSeconds: number }

/** A generator: `inflight` gets at a time over one Connection until the time is up; reports its count and CPU. */
async function generate(args: GeneratorArgs): Promise<void> {
  const connection = await Connection.open(args.address, () => {}, 5_000, args.path);
  let requests = 0;
  let running = true;
  const cpu = process.cpuUsage();
  const loop = async (lane: number) => {
    for (let i = lane; running; i += args.inflight) {
      await connection.request({ t: 'get', v: args.version, space, key: keyOf(i) }, 5_000);
      requests++;
    }
  };
  process.send!({ t: 'started' });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const lanes = Array.from({ length: args.inflight }, (_, lane) => loop(lane));
  setTimeout(() => (running = false), args.seconds * 1000);
  await Promise.all(lanes);
  const used = process.cpuUsage(cpu);
  process.send!({ t: 'done', requests, cpuSeconds: (used.user + used.system) / 1e6 } satisfies Counts & { t: string });
  connection.close();
  setTimeout(() => process.exit(0), 100);
}

/** A bare ws server: unpack a message, answer each frame with the value, all answers in one message. */
async function serveWs(): Promise<void> {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  server.on('connection', (socket) => {
    socket.binaryType = 'nodebuffer';
    socket.on('message', (data: Buffer) => {
      const frames = packr.unpack(data) as Array<{ id: number }>;
      socket.send(packr.pack(frames.map((f) => ({ t: 'reply', id: f.id, result: value }))));
    });
  });
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  process.send!({ t: 'listening', address: `127.0.0.1:${port}`, path: '/', version: 0 });
  process.on('message', () => process.send!(serverFrames));
}

/** kv's Connection on the server side, answering every request with the value. */
async function serveLink(): Promise<void> {
  const { server, address } = await listen('127.0.0.1', 0);
  server.on('connection', (socket) => {
    const connection = new Connection(socket, (message, conn) => {
      if ('id' in message && typeof message.id === 'number') conn.reply(message.id, value);
    }, 'generator');
    void connection;
  });
  process.send!({ t: 'listening', address, path: '/', version: 0 });
  process.on('message', () => process.send!(serverFrames));
}
const serverFrames = { t: 'frames' };

interface Server { name: string; pid: number; address: string; path: string; version: number; stop: () => Promise<void> }

async function startChild(name: 'ws' | 'kv-link'): Promise<Server> {
  const child = fork(self, [], { env: { ...process.env, KV_FLOOR_ROLE: name }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const listening = await new Promise<{ address: string; path: string; version: number }>((resolve) => child.once('message', (m) => resolve(m as never)));
  return { name, pid: child.pid!, ...listening, stop: async () => void child.kill() };
}

async function startDaemon(dir: string, cpuProfDir: string | undefined): Promise<Server> {
  const ports = await freePorts(1);
  const nodeArgs = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [];
  const cluster = startCluster(mkdtempSync(join(dir, 'cluster-')), ports.coordinator, ports.daemonBase, 1, nodeArgs);
  try {
    await waitUntilUp(cluster);
    const client = await Client.connect(cluster.coordinator, { subscribe: false });
    await client.addSpace(space, { partitions: 4, tolerate: 0 });
    for (let i = 0; i < keys; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => client.put(space, keyOf(i + j), value)));
    const config = client.currentConfig;
    await client.close();
    const server = config.servers[0]!;
    const pid = childrenOf(cluster.process.pid!).find((p) => kvProcessName(p).startsWith('daemon'));
    if (pid === undefined) throw new Error('no daemon process under kv up');
    return {
      name: 'daemon', pid, address: server.address, path: daemonPath(server.id, config.incarnation), version: config.version,
      stop: async () => void (await stopCluster(cluster)),
    };
  } catch (error) {
    await stopCluster(cluster); // a failed start leaves no cluster running behind the benchmark
    throw error;
  }
}

async function measure(server: Server, generators: number, inflight: number, seconds: number) {
  const children: ChildProcess[] = [];
  const started: Array<Promise<unknown>> = [];
  for (let g = 0; g < generators; g++) {
    const args: GeneratorArgs = { role: 'generator', address: server.address, path: server.path, inflight: Math.ceil(inflight / generators), seconds, version: server.version };
    const child = fork(self, [], { env: { ...process.env, KV_FLOOR_ROLE: 'generator', KV_FLOOR_ARGS: JSON.stringify(args) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    started.push(new Promise((resolve) => child.once('message', resolve)));
  }
  await Promise.all(started);
  const done = children.map((child) => new Promise<Counts>((resolve) => child.on('message', (m) => (m as { t: string }).t === 'done' && resolve(m as Counts))));
  const before = procStat(server.pid)!.cpuSeconds;
  const at = performance.now();
  for (const child of children) child.send('go');
  const counts = await Promise.all(done);
  const wall = (performance.now() - at) / 1000;
  const serverCpu = procStat(server.pid)!.cpuSeconds - before;
  const requests = counts.reduce((n, c) => n + c.requests, 0);
  const generatorsCpu = counts.reduce((n, c) => n + c.cpuSeconds, 0);
  return { requestsPerSecond: requests / wall, serverUs: (serverCpu * 1e6) / requests, generatorsUs: (generatorsCpu * 1e6) / requests };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      generators: { type: 'string', default: '2' },
      inflight: { type: 'string', default: '64' },
      json: { type: 'boolean', default: false },
      /** A V8 CPU profile of every kv process (the daemon's is the one to read) into this dir. */
      'cpu-prof': { type: 'string' },
      /** Which servers, comma-separated (ws, kv-link, daemon); all by default. */
      servers: { type: 'string', default: 'ws,kv-link,daemon' },
    },
  });
  const [seconds, rounds, generators, inflight] = [values.seconds, values.rounds, values.generators, values.inflight].map(Number) as [number, number, number, number];
  const dir = mkdtempSync(join(tmpdir(), 'kv-floor-'));
  const results: Record<string, Array<Awaited<ReturnType<typeof measure>>>> = { ws: [], 'kv-link': [], daemon: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      for (const name of values.servers.split(',') as Array<'ws' | 'kv-link' | 'daemon'>) {
        if (!(name in results)) throw new Error(`no server "${name}": ws, kv-link or daemon`);
        const server = name === 'daemon' ? await startDaemon(dir, values['cpu-prof']) : await startChild(name);
        try {
          await measure(server, generators, inflight, 1); // warm-up, not counted
          results[name]!.push(await measure(server, generators, inflight, seconds));
        } finally {
          await server.stop();
        }
        process.stderr.write(`round ${r + 1}: ${name} ${Math.round(results[name]!.at(-1)!.requestsPerSecond)} requests/s\n`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = Object.entries(results).filter(([, runs]) => runs.length > 0).map(([name, runs]) => ({
    name,
    requestsPerSecond: round(median(runs.map((x) => x.requestsPerSecond)), 0),
    serverUs: round(median(runs.map((x) => x.serverUs)), 1),
    generatorsUs: round(median(runs.map((x) => x.generatorsUs)), 1),
    serverUsRounds: runs.map((x) => round(x.serverUs, 1)),
  }));
  if (values.json) {
    process.stdout.write(JSON.stringify({ machine: machine(), seconds, rounds, generators, inflight, rows }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`${describeMachine(machine())}\n${generators} generators, ${inflight} in flight, ${seconds} s x ${rounds} rounds\n\n`);
  process.stdout.write('| server | requests/s | server CPU µs/request (rounds) | generators CPU µs/request |\n|---|--:|--:|--:|\n');
  for (const row of rows) process.stdout.write(`| ${row.name} | ${row.requestsPerSecond} | ${row.serverUs} (${row.serverUsRounds.join(', ')}) | ${row.generatorsUs} |\n`);
}

const role = process.env.KV_FLOOR_ROLE;
if (role === 'generator') await generate(JSON.parse(process.env.KV_FLOOR_ARGS!) as GeneratorArgs);
else if (role === 'ws') await serveWs();
else if (role === 'kv-link') await serveLink();
else await main();

// What a backup costs the cluster while one daemon cannot quiesce (issue 13): a coordinator and three daemons,
// one of them (b) reached by everyone through a TCP proxy that is cut, so the daemons whose chains run into b
// cannot quiesce; a writer keeps putting to a space b holds nothing of, and `kv backup` runs until it gives up.
// Reports every daemon's total frozen time (its 'thawed' log lines), the number of freezes, how long the backup
// took, and what the writer saw: its longest wait and the sum of its waits over 300 ms, and its rate during the
// backup against before it.
//
//   npm run bench -- backup-fault [--kv PATH/TO/cli/kv.js] [--per-second] [--json]
//
// `--kv` runs the cluster and the backup from another build (e.g. a checkout before the fix); the default is this one.
// `--per-second` also prints the writer's acknowledgements in each second.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from '../shared/client.js';
import type { ClusterConfig } from '../shared/config.js';
import { partitionOf } from '../shared/partition.js';
import { freePort, kvScript, pause, progress } from './cluster.js';

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const script = resolve(flag('--kv') ?? kvScript);
const json = argv.includes('--json');
const perSecond = argv.includes('--per-second');

interface Proc {
  child: ChildProcess;
  logs: Array<Record<string, unknown>>;
  stderr: string;
  exited: Promise<number | null>;
}

function run(args: string[]): Proc {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KV_LOG_LEVEL: 'info' } });
  const proc: Proc = { child, logs: [], stderr: '', exited: new Promise((r) => child.once('exit', (code) => r(code))) };
  let partial = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    proc.stderr += chunk;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        proc.logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a CLI message line
      }
    }
  });
  return proc;
}

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(20);
  }
}

const logged = (p: Proc, msg: string) => until(`log "${msg}"`, () => p.logs.find((l) => l.msg === msg));

/** A TCP proxy that can stop forwarding, in both directions, new connections included (what it gets then is dropped: a cut that never heals). */
async function cuttableProxy(targetPort: number) {
  const sockets: net.Socket[] = [];
  let cut = false;
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on('error', () => {});
      from.on('data', (chunk: Buffer) => {
        if (!cut) to.write(chunk);
      });
      from.on('close', () => to.destroy());
      sockets.push(from);
    };
    forward(down, up);
    forward(up, down);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut: () => {
      cut = true;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const chainOf = (config: ClusterConfig, space: string, key: string) => {
  const s = config.spaces.find((x) => x.name === space)!;
  return s.partitions[partitionOf(key, s.partitions.length)]!.chain;
};

const dir = mkdtempSync(join(tmpdir(), 'kv-bench-backup-fault-'));
const procs: Proc[] = [];
let proxy: Awaited<ReturnType<typeof cuttableProxy>> | undefined;
let client: Client | undefined;
try {
  const coordinator = run(['coordinator', '--port', '0', '--data', join(dir, 'coordinator')]);
  procs.push(coordinator);
  const address = String((await logged(coordinator, 'listening')).address);
  const daemon = (name: string, extra: string[] = []) => {
    const p = run(['daemon', '--listen-port', '0', '--coordinator', address, '--data', join(dir, name), ...extra]);
    procs.push(p);
    return p;
  };
  const a = daemon('a');
  const c = daemon('c');
  const bPort = await freePort();
  proxy = await cuttableProxy(bPort);
  const b = run(['daemon', '--listen-port', String(bPort), '--advertise', proxy.address, '--coordinator', address, '--data', join(dir, 'b')]);
  procs.push(b);
  const daemons = { a, b, c };
  const ids = Object.fromEntries(await Promise.all(Object.entries(daemons).map(async ([n, p]) => [n, String((await logged(p, 'registered with the coordinator')).serverId)])));
  client = await Client.connect(address, { timeoutMs: 300_000 });
  await until('3 available daemons', async () => (await client!.showConfig()).servers.filter((s) => s.state === 'available').length === 3);
  await client.addSpace('chained', { partitions: 8, tolerate: 1 });
  await client.addSpace('free', { partitions: 8 });
  const config = await client.showConfig();
  const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
  const intoB = keys.filter((k) => chainOf(config, 'chained', k)[1] === ids.b).slice(0, 4);
  const freeKeys = keys.filter((k) => chainOf(config, 'free', k)[0] !== ids.b).slice(0, 50);

  const acks: number[] = [];
  let stop = false;
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      await client!.put('free', freeKeys[i % freeKeys.length]!, { i });
      acks.push(performance.now());
    }
  })();
  await pause(3_000);
  proxy.cut();
  for (const k of intoB) client.put('chained', k, { stuck: true }).catch(() => {});
  await pause(1_000);
  const beforeFrom = performance.now() - 3_000;
  const beforeRate = acks.filter((t) => t >= beforeFrom).length / 3;

  progress(`backup while daemon b (${ids.b}) is cut off from the others, with ${script}`);
  const started = performance.now();
  const backup = run(['backup', 'x', '--out', dir, '--coordinator', address]);
  const code = await backup.exited;
  const ended = performance.now();
  stop = true;
  await writer;

  const during = acks.filter((t) => t >= started && t <= ended);
  const gaps = during.slice(1).map((t, i) => t - during[i]!);
  const perDaemon = Object.fromEntries(
    Object.entries(daemons).map(([n, p]) => {
      const thaws = p.logs.filter((l) => l.msg === 'thawed' || String(l.msg).startsWith('thawed by the lease'));
      return [n, { freezes: thaws.length, frozenMs: Math.round(thaws.reduce((s, l) => s + Number(l.heldMs), 0)) }];
    }),
  );
  const result = {
    build: script,
    backupExit: code,
    backupMs: Math.round(ended - started),
    backupLine: backup.stderr.split('\n').filter((l) => l.startsWith('kv:')).at(-1) ?? null,
    daemons: perDaemon,
    writer: {
      longestWaitMs: Math.round(Math.max(0, ...gaps)),
      waitsOver300Ms: Math.round(gaps.filter((g) => g > 300).reduce((s, g) => s + g, 0)),
      opsPerSecondBefore: Math.round(beforeRate),
      opsPerSecondDuring: Math.round(during.length / ((ended - started) / 1000)),
    },
  };
  if (perSecond) {
    const origin = acks[0]!;
    const buckets = new Map<number, number>();
    for (const t of acks) buckets.set(Math.floor((t - origin) / 1000), (buckets.get(Math.floor((t - origin) / 1000)) ?? 0) + 1);
    progress(`acks per second from the start (backup from +${Math.round((started - origin) / 1000)} s): ${[...buckets.values()].join(' ')}`);
  }
  if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    process.stdout.write(
      [
        `build ${result.build}`,
        `backup: exit ${result.backupExit} after ${result.backupMs} ms: ${result.backupLine}`,
        ...Object.entries(perDaemon).map(([n, d]) => `daemon ${n}: frozen ${d.frozenMs} ms in ${d.freezes} freezes`),
        `writer to the free space: longest wait ${result.writer.longestWaitMs} ms, waits over 300 ms ${result.writer.waitsOver300Ms} ms, ` +
          `${result.writer.opsPerSecondDuring} ops/s during the backup vs ${result.writer.opsPerSecondBefore} before`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await client?.close();
  proxy?.close();
  for (const p of procs) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
}

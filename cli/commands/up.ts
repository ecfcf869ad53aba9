// kv up: a whole local cluster as child processes, data under one folder. Run again, it picks the data up.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { Client } from '../../shared/client.js';
import { KvError } from '../../shared/errors.js';
import { createLogger } from '../../shared/log.js';
import { fail } from '../run.js';
import { portOption, wholeNumberOption } from '../options.js';

interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<number | null>;
}

const kvScript = process.argv[1]!;

function start(name: string, args: string[]): Child {
  // The children run with kv up's own node flags: `node --cpu-prof dist/cli/kv.js up` profiles every process.
  const child = spawn(process.execPath, [...process.execArgv, kvScript, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { name, process: child, exited };
}

async function waitFor<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new KvError('TIMEOUT', `${what} did not happen within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const upCommand: CommandModule<object, { dir: string; daemons: number; listen: string; port: number; 'daemon-port': number }> = {
  command: 'up',
  describe: 'start a local cluster (a coordinator and N daemons) and stop it cleanly on Ctrl-C',
  builder: (y) =>
    y
      .option('dir', { type: 'string', default: './kv-data', describe: 'folder holding every process data dir' })
      .option('daemons', wholeNumberOption('daemons', { min: 1 }, { default: 3, describe: 'number of daemons' }))
      .option('listen', { type: 'string', default: '127.0.0.1', describe: 'address every process listens on' })
      .option('port', portOption('port', 1, { default: 1982, describe: "the coordinator's port" }))
      .option('daemon-port', portOption('daemon-port', 1, { default: 2012, describe: "the first daemon's port; the others follow" })),
  handler: async (argv) => {
    const log = createLogger('up');
    const dir = resolve(argv.dir);
    mkdirSync(dir, { recursive: true });
    const coordinator = `${argv.listen}:${argv.port}`;
    const children: Child[] = [];
    let stopping = false;

    const stopAll = async (code: number) => {
      if (stopping) return;
      stopping = true;
      // Daemons first, so each can tell the coordinator it is leaving.
      for (const group of [children.filter((c) => c.name !== 'coordinator'), children.filter((c) => c.name === 'coordinator')]) {
        for (const child of group) if (child.process.exitCode === null) child.process.kill('SIGTERM');
        await Promise.all(group.map((c) => c.exited));
      }
      log.info('all processes stopped');
      process.exit(code);
    };
    process.on('SIGINT', () => void stopAll(0));
    process.on('SIGTERM', () => void stopAll(0));
    const watch = (child: Child) =>
      void child.exited.then((code) => {
        if (stopping) return;
        log.error({ process: child.name, code }, 'a cluster process exited; stopping the others');
        void stopAll(1);
      });

    try {
      const coord = start('coordinator', ['coordinator', '--listen', argv.listen, '--port', String(argv.port), '--data', join(dir, 'coordinator')]);
      children.push(coord);
      watch(coord);
      const client = await waitFor('the coordinator starting', 15_000, () => Client.connect(coordinator, { timeoutMs: 1_000 }));
      for (let i = 1; i <= argv.daemons; i++) {
        const daemon = start(`daemon-${i}`, [
          'daemon', '--listen', argv.listen, '--listen-port', String(argv['daemon-port'] + i - 1),
          '--coordinator', coordinator, '--data', join(dir, `daemon-${i}`),
        ]);
        children.push(daemon);
        watch(daemon);
      }
      const config = await waitFor('every daemon registering', 30_000, async () => {
        const c = await client.showConfig();
        return c.servers.filter((s) => s.state === 'available').length >= argv.daemons ? c : undefined;
      });
      await client.close();
      process.stdout.write(
        [
          `kv cluster ${config.clusterId} is up (data in ${dir})`,
          `  coordinator ${coordinator}`,
          ...config.servers.filter((s) => s.state === 'available').map((s) => `  daemon ${s.id} ${s.address}`),
          `try: kv add-space users && kv put users ada '{"name":"Ada"}' && kv get users ada`,
          'Ctrl-C stops the cluster.',
          '',
        ].join('\n'),
      );
    } catch (error) {
      await stopAll(1).catch(() => {});
      fail(error);
    }
  },
};

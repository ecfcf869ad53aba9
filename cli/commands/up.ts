// kv up: a whole local cluster as child processes, data under one folder. Run again, it picks the data up.
// It believes only its own children: each says when it serves (cli/run.ts, `Ready`), so a cluster already running
// on the same ports or data is never reported as this one. A process that dies later is started again
// (restart-budget.ts) while the others keep serving.
import { spawn, type ChildProcess } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { delimiter, join, relative, resolve, sep } from 'node:path';
import { makeDir } from '../../shared/make-dir.js';
import type { CommandModule } from 'yargs';
import { formatAddress, parseAddress } from '../../shared/address.js';
import { KvError } from '../../shared/errors.js';
import { createLogger } from '../../shared/log.js';
import { defaultCoordinator, portOption, wholeNumberOption } from '../options.js';
import { RestartBudget, restartBudgetDefaults, type RestartBudgetOptions } from '../restart-budget.js';
import { fail, isReady, type Ready } from '../run.js';
import { localClusterCertificates, tlsFlags } from '../certs/authority.js';

const kvScript = process.argv[1]!;
/** How long the cluster may take to come up: every daemon registered. */
const upTimeoutMs = 30_000;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const describeExit = (exit: Exit) => (exit.signal ? `was killed by ${exit.signal}` : `exited with ${exit.code}`);

/** A child that exited before it served; it has said why on stderr (unless a signal killed it). */
class ExitedEarly extends Error {
  constructor(
    readonly member: string,
    readonly exit: Exit,
  ) {
    super(`${member} ${describeExit(exit)} before it served`);
  }
}

/** One process of the cluster, across its restarts. */
class Member {
  child: ChildProcess | undefined;
  exited: Promise<Exit> = Promise.resolve({ code: 0, signal: null });
  readonly budget: RestartBudget;

  constructor(
    readonly name: string,
    private readonly args: string[],
    budget: RestartBudgetOptions,
  ) {
    this.budget = new RestartBudget(budget);
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process; resolves when it serves, rejects with ExitedEarly if it exits first. */
  launch(): Promise<Ready> {
    // The children run with kv up's own node flags: `node --cpu-prof dist/cli/kv.js up` profiles every process.
    // Their own process group: Ctrl-C reaches kv up alone, which stops the daemons before the coordinator. The
    // IPC channel carries `Ready`, and its end tells a child that kv up is gone.
    const child = spawn(process.execPath, [...process.execArgv, kvScript, ...this.args], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    this.child = child;
    this.exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
    const ready = new Promise<Ready>((resolve, reject) => {
      child.on('message', (message) => isReady(message) && resolve(message));
      void this.exited.then((exit) => reject(new ExitedEarly(this.name, exit)));
    });
    ready.catch(() => {}); // read by whoever waits for it; a restart may not
    return ready;
  }
}

function withDeadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KvError('TIMEOUT', `${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** How a person runs this kv in a shell: `kv` if that is this script on their PATH, else node and its path. */
function kvInvocation(): string {
  const script = realpathSync(kvScript);
  // npm adds node_modules/.bin to PATH for `npm start` and `npx`; the user's shell has no such entry.
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d && !d.endsWith(`node_modules${sep}.bin`));
  for (const dir of dirs) {
    try {
      if (realpathSync(join(dir, 'kv')) === script) return 'kv';
    } catch {
      // no kv there
    }
  }
  const near = relative(process.cwd(), script);
  const path = near.startsWith('..') ? script : near;
  return `node ${/^[\w./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`}`;
}

/** ` -c ADDRESS`, unless commands reach this coordinator without it. */
function coordinatorFlag(coordinator: string): string {
  try {
    if (formatAddress(parseAddress(defaultCoordinator(), 1982)) === coordinator) return '';
  } catch {
    // $KV_COORDINATOR is not an address: every command needs -c
  }
  return ` -c ${coordinator}`;
}

type Args = {
  dir: string; daemons: number; coordinators: number; etcd?: string; prefix: string; listen: string; advertise?: string; port: number;
  'daemon-port': number; 'restarts-max': number; 'tls-dir'?: string; durable: boolean; 'metrics-port'?: number;
};

export const upCommand: CommandModule<object, Args> = {
  command: 'up',
  describe: 'start a local cluster (a coordinator and N daemons), restart a process that dies, stop it cleanly on Ctrl-C',
  builder: (y) =>
    y
      .option('dir', { type: 'string', default: './kv-data', describe: 'folder holding every process data dir' })
      .option('daemons', wholeNumberOption('daemons', { min: 1 }, { default: 3, describe: 'number of daemons' }))
      .option('coordinators', wholeNumberOption('coordinators', { min: 1, max: 9 }, { default: 1, describe: 'number of coordinators (more than one needs --etcd); their ports follow --port' }))
      .option('etcd', { type: 'string', requiresArg: true, describe: "keep the cluster state in this etcd, URL[,URL...] (kv coordinator --etcd); it is not started here" })
      .option('prefix', { type: 'string', default: '/kv/up', requiresArg: true, describe: "with --etcd: the key prefix of this cluster's state" })
      .check((argv) => {
        if (argv.coordinators > 1 && argv.etcd === undefined) throw new KvError('BAD_REQUEST', '--coordinators above 1 needs --etcd URL[,URL...]: replicated coordinators keep the config in etcd');
        return true;
      })
      .option('listen', { type: 'string', default: '127.0.0.1', describe: 'address every process listens on' })
      .option('advertise', { type: 'string', describe: 'the host every process gives as its address (needed with a wildcard --listen)' })
      .option('port', portOption('port', 1, { default: 1982, describe: "the coordinator's port" }))
      .option('daemon-port', portOption('daemon-port', 1, { default: 2012, describe: "the first daemon's port; the others follow" }))
      .option('metrics-port', portOption('metrics-port', 1, { describe: 'serve Prometheus metrics: the coordinators on this port and those after it, then one per daemon' }))
      .option('durable', { type: 'boolean', default: false, describe: 'every daemon fsyncs each commit before answering (kv daemon --durable)' })
      .option('tls-dir', { type: 'string', requiresArg: true, describe: 'run with TLS on: a CA and certificates in this folder (made if missing; admin.crt is for your commands)' })
      .option('restarts-max', wholeNumberOption('restarts-max', { min: 0 }, { default: restartBudgetDefaults.restartsMax, describe: 'restarts of one process within a minute, after which kv up stops the cluster' })),
  handler: async (argv) => {
    const log = createLogger('up');
    const dir = resolve(argv.dir);
    makeDir(dir, 'the --dir folder');
    // What daemons and clients dial: the coordinator's advertised address, when it has one.
    const host = argv.advertise === undefined ? argv.listen : parseAddress(argv.advertise, 0).host;
    const coordinatorAddresses = Array.from({ length: argv.coordinators }, (_, i) => formatAddress({ host, port: argv.port + i }));
    const coordinator = coordinatorAddresses.join(',');
    const advertise = argv.advertise === undefined ? [] : ['--advertise', parseAddress(argv.advertise, 0).host];
    const budget = { ...restartBudgetDefaults, restartsMax: argv['restarts-max'] };
    const tlsDir = argv['tls-dir'] === undefined ? undefined : resolve(argv['tls-dir']);
    const daemonNames = Array.from({ length: argv.daemons }, (_, i) => `daemon-${i + 1}`);
    if (tlsDir) {
      try {
        localClusterCertificates(tlsDir, host, [{ name: 'coordinator', role: 'coordinator' }, ...daemonNames.map((name) => ({ name, role: 'daemon' as const }))]);
      } catch (error) {
        fail(error);
      }
    }
    const tls = (name: string) => (tlsDir ? tlsFlags(tlsDir, name) : []);
    // Coordinators first, then daemons, as their listening ports go.
    const metrics = (i: number) => (argv['metrics-port'] === undefined ? [] : ['--metrics-port', String(argv['metrics-port'] + i)]);
    const store = () => (argv.etcd === undefined ? ['--data', join(dir, 'coordinator')] : ['--etcd', argv.etcd, '--prefix', argv.prefix]);
    const coords = coordinatorAddresses.map((_, i) =>
      new Member(argv.coordinators === 1 ? 'coordinator' : `coordinator-${i + 1}`, [
        'coordinator', '--listen', argv.listen, ...advertise, '--port', String(argv.port + i), ...store(), ...tls('coordinator'), ...metrics(i),
      ], budget),
    );
    const daemons = daemonNames.map((name, i) =>
      new Member(name, [
        'daemon', '--listen', argv.listen, ...advertise, '--listen-port', String(argv['daemon-port'] + i),
        '--coordinator', coordinator, '--data', join(dir, name), ...tls(name), ...(argv.durable ? ['--durable'] : []),
        ...metrics(argv.coordinators + i),
      ], budget),
    );
    let stopping = false;

    /** Stops every process, then exits with `code`; `error` or `line`: said in one line at the end. */
    const stopAll = async (code: number, how: { quiet?: boolean; error?: unknown; line?: string } = {}) => {
      if (stopping) return;
      stopping = true;
      // Daemons first, so each can tell the coordinator it is leaving.
      for (const group of [daemons, coords]) {
        for (const member of group) if (member.running) member.child!.kill('SIGTERM');
        await Promise.all(group.map((m) => m.exited));
      }
      if (how.quiet) log.debug('all processes stopped');
      else log.info('all processes stopped');
      if (how.error !== undefined) fail(how.error);
      if (how.line !== undefined) process.stderr.write(`kv: ${how.line}\n`);
      process.exit(code);
    };
    process.on('SIGINT', () => void stopAll(0));
    process.on('SIGTERM', () => void stopAll(0));

    /** After the cluster is up: a process that exits is started again, within its budget. */
    const supervise = (member: Member) =>
      void member.exited.then(async (exit) => {
        if (stopping) return;
        const delayMs = member.budget.next();
        if (delayMs === undefined) {
          log.error({ process: member.name, code: exit.code, signal: exit.signal }, 'a cluster process keeps exiting; stopping the cluster');
          // Exit 1: no code of the table fits a process that keeps dying (its own lines say why).
          return stopAll(1, { line: `${member.name} ${describeExit(exit)} after ${member.budget.describe()}; kv up stopped the cluster` });
        }
        log.warn({ process: member.name, code: exit.code, signal: exit.signal, restartInMs: delayMs }, 'a cluster process exited; starting it again');
        await new Promise((r) => setTimeout(r, delayMs));
        if (stopping) return;
        member.launch().then(
          (ready) => log.info({ process: member.name, address: ready.address, ...(ready.serverId ? { server: ready.serverId } : {}) }, 'started again'),
          () => {}, // its exit is handled below
        );
        supervise(member);
      });

    let ready: Ready[];
    try {
      // One at a time: the coordinator's refusal (its data dir in use, its port taken) is the only line printed.
      await withDeadline(coords.length === 1 ? 'the coordinator starting' : 'the coordinators starting', upTimeoutMs, Promise.all(coords.map((c) => c.launch())));
      ready = await withDeadline('every daemon registering', upTimeoutMs, Promise.all(daemons.map((d) => d.launch())));
    } catch (error) {
      if (stopping) return; // Ctrl-C while starting: stopAll exits
      if (error instanceof ExitedEarly && error.exit.code !== null) {
        // The child said why, in one line on stderr, and exited with the code that fits: so does kv up.
        return stopAll(error.exit.code || 1, { quiet: true });
      }
      return stopAll(1, { quiet: true, error });
    }
    for (const member of [...coords, ...daemons]) supervise(member);
    const kv = kvInvocation();
    const c = coordinatorFlag(coordinator) + (tlsDir ? ` ${tlsFlags(tlsDir, 'admin').join(' ')}` : '');
    process.stdout.write(
      [
        `kv cluster ${ready[0]?.clusterId} is up (data in ${dir})`,
        ...coordinatorAddresses.map((a) => `  coordinator ${a}`),
        ...(argv.etcd === undefined ? [] : [`  config in etcd ${argv.etcd} under ${argv.prefix}`]),
        ...ready.map((d) => `  daemon ${d.serverId} ${d.address}`),
        ...(argv['metrics-port'] === undefined ? [] : [`  metrics on ${host} ports ${argv['metrics-port']}..${argv['metrics-port'] + argv.coordinators + argv.daemons - 1} (/metrics)`]),
        `try: ${kv} add-space users${c} && ${kv} put users ada '{"name":"Ada"}'${c} && ${kv} get users ada${c}`,
        'A process that dies is started again. Ctrl-C stops the cluster.',
        '',
      ].join('\n'),
    );
  },
};

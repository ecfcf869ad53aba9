import type { CommandModule } from 'yargs';
import { Daemon } from '../../daemon/daemon.js';
import { createLogger } from '../../shared/log.js';
import { parseCoordinators } from '../../shared/coordinator-finder.js';
import { fail, serve } from '../run.js';
import { badRequest } from '../../shared/errors.js';
import { checkAdvertisable } from '../../shared/advertise.js';
import { coordinatorsDescription, defaultCoordinator, portOption, tlsOf, tlsOption, wholeNumberOption, type TlsArgs } from '../options.js';

export const daemonCommand: CommandModule<object, {
  listen: string; 'listen-port': number; advertise?: string; coordinator: string; 'coordinator-port'?: number; data: string; 'value-bytes-max'?: number; 'write-buffer-bytes'?: number; 'metrics-port'?: number; durable: boolean;
} & TlsArgs> = {
  command: 'daemon',
  describe: 'run a storage daemon',
  builder: (y) =>
    tlsOption(y, true)
      .option('listen', { alias: 'l', type: 'string', default: '127.0.0.1', describe: 'address to serve clients on' })
      .option('advertise', { type: 'string', describe: 'the address to register, HOST or HOST:PORT, that clients and other daemons dial (needed with a wildcard --listen)' })
      .option('listen-port', portOption('listen-port', 0, { alias: 'p', default: 2012, describe: 'port to serve on (0: any free port)' }))
      .option('coordinator', { alias: 'c', type: 'string', default: defaultCoordinator(), describe: `${coordinatorsDescription} (or HOST with --coordinator-port)` })
      .option('coordinator-port', portOption('coordinator-port', 1, { alias: 'P', describe: "the coordinators' port where --coordinator gives none (HyperDex spelling)" }))
      .option('data', { alias: 'D', type: 'string', demandOption: true, describe: 'data directory (LevelDB and snapshots)' })
      .option('value-bytes-max', { type: 'number', hidden: true, describe: 'moved: the largest value is a cluster setting (kv coordinator --value-bytes-max)' })
      // LevelDB clips the write buffer to this range anyway; outside it a value would not do what it says.
      .option('metrics-port', portOption('metrics-port', 0, { describe: 'serve Prometheus metrics at http://LISTEN:PORT/metrics (0: any free port, logged); off by default' }))
      .option('durable', {
        type: 'boolean',
        default: false,
        describe: 'fsync every commit before answering: an acknowledged write survives this machine losing power (group commit: one fsync for the writes that arrive meanwhile); off: it survives the process dying, and a power loss only on the other replicas',
      })
      .option('write-buffer-bytes', wholeNumberOption('write-buffer-bytes', { min: 64 * 1024, max: 1024 * 1024 * 1024, unit: 'bytes' }, {
        describe: "LevelDB's write buffer (memtable) size; default 4 MiB",
      }))
      .example('kv daemon --listen 127.0.0.1 --listen-port 2012 --coordinator 127.0.0.1:1982 --data ./d1', '')
      .example('kv daemon --listen 10.0.0.5 --coordinator 10.0.0.1:1982,10.0.0.2:1982,10.0.0.3:1982 --data ./d1', ''),
  handler: (argv) => {
    const log = createLogger('daemon');
    let coordinators: string[];
    try {
      if (argv['value-bytes-max'] !== undefined) {
        throw badRequest('--value-bytes-max is a cluster setting now, the same on every daemon: give it to kv coordinator');
      }
      coordinators = parseCoordinators(argv.coordinator, argv['coordinator-port']);
      for (const coordinator of coordinators) checkAdvertisable(argv.listen, argv.advertise, coordinator);
    } catch (error) {
      fail(error);
    }
    return serve(log, (abort) =>
      Daemon.start({
        host: argv.listen,
        port: argv['listen-port'],
        coordinator: coordinators,
        advertise: argv.advertise,
        dataDir: argv.data,
        tls: tlsOf(argv),
        ...(argv['write-buffer-bytes'] ? { writeBufferBytes: argv['write-buffer-bytes'] } : {}),
        metricsPort: argv['metrics-port'],
        durable: argv.durable,
        log,
        abort,
        onFatal: (error) => {
          log.fatal({ code: error.code }, error.message);
          fail(error);
        },
      }),
    );
  },
};

import type { CommandModule } from 'yargs';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/log.js';
import { frameBytesMax, heartbeatIntervalMsDefault, heartbeatTimeoutMsDefault, valueBytesMaxDefault } from '../../shared/limits.js';
import { msOption, portOption, wholeNumberOption } from '../options.js';
import { fail, serve } from '../run.js';
import { checkCoordinatorAdvertisable } from '../../shared/advertise.js';

export const coordinatorCommand: CommandModule<object, {
  listen: string; advertise?: string; port: number; data: string; restore?: string; 'heartbeat-interval-ms': number; 'heartbeat-timeout-ms': number;
  'fault-stall-after-freeze-ms': number; 'value-bytes-max'?: number;
}> = {
  command: 'coordinator',
  describe: 'run the coordinator, which holds the cluster config',
  builder: (y) =>
    y
      .option('listen', { alias: 'l', type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
      .option('advertise', { type: 'string', describe: 'the address daemons and clients dial, HOST or HOST:PORT (needed with a wildcard --listen)' })
      .option('port', portOption('port', 0, { alias: 'p', default: 1982, describe: 'port to listen on (0: any free port)' }))
      .option('data', { alias: 'd', type: 'string', demandOption: true, describe: 'directory for the cluster state' })
      .option('restore', { type: 'string', describe: "start from a backup's coordinator.bin (read-only; --data must be new)" })
      .option('heartbeat-interval-ms', msOption('heartbeat-interval-ms', 1, { default: heartbeatIntervalMsDefault, describe: 'how often daemons renew their read leases (their heartbeats)' }))
      .option('heartbeat-timeout-ms', msOption('heartbeat-timeout-ms', 1, { default: heartbeatTimeoutMsDefault, describe: 'silence after which a daemon is not available (its read lease ends 5% + 100 ms sooner)' }))
      .option('value-bytes-max', wholeNumberOption('value-bytes-max', { min: 1, max: frameBytesMax, unit: 'bytes' }, {
        describe: `largest stored value, in bytes, on every daemon (default ${valueBytesMaxDefault}; kept in the cluster config)`,
      }))
      .option('fault-stall-after-freeze-ms', msOption('fault-stall-after-freeze-ms', 0, { default: 0, hidden: true, describe: 'testing only: stall backups after freezing' }))
      .example('kv coordinator --port 1982 --data ./coord', '')
      .example('kv coordinator --listen 0.0.0.0 --advertise db1.example --data ./coord', '')
      .example('kv coordinator --restore /backups/2026-11-21T10:00:00/coordinator.bin --port 1983 --data ./coord2', ''),
  handler: (argv) => {
    const log = createLogger('coordinator');
    try {
      checkCoordinatorAdvertisable(argv.listen, argv.advertise);
    } catch (error) {
      fail(error);
    }
    return serve(log, () =>
      Coordinator.start({
        host: argv.listen,
        port: argv.port,
        advertise: argv.advertise,
        dataDir: argv.data,
        ...(argv.restore === undefined ? {} : { restoreFrom: argv.restore }),
        heartbeatIntervalMs: argv['heartbeat-interval-ms'],
        heartbeatTimeoutMs: argv['heartbeat-timeout-ms'],
        ...(argv['value-bytes-max'] === undefined ? {} : { valueBytesMax: argv['value-bytes-max'] }),
        faultStallAfterFreezeMs: argv['fault-stall-after-freeze-ms'],
        log,
      }),
    );
  },
};

import type { CommandModule } from 'yargs';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/log.js';
import { badRequest } from '../../shared/errors.js';
import { frameBytesMax, leaderLeaseTtlSecondsDefault, heartbeatIntervalMsDefault, heartbeatTimeoutMsDefault, valueBytesMaxDefault } from '../../shared/limits.js';
import { msOption, portOption, tlsOf, tlsOption, wholeNumberOption, type TlsArgs } from '../options.js';
import { fail, serve } from '../run.js';
import { backupStates, type BackupState } from '../../coordinator/backup.js';
import { checkCoordinatorAdvertisable } from '../../shared/advertise.js';

export const coordinatorCommand: CommandModule<object, {
  listen: string; advertise?: string; port: number; data?: string; etcd?: string[]; prefix: string; 'etcd-lease-ttl-seconds': number; restore?: string; 'heartbeat-interval-ms': number; 'heartbeat-timeout-ms': number;
  'fault-stall-after-freeze-ms': number; 'metrics-port'?: number; 'fault-stall-backup-at'?: { state: BackupState; ms: number }; 'value-bytes-max'?: number;
} & TlsArgs> = {
  command: 'coordinator',
  describe: 'run the coordinator, which holds the cluster config',
  builder: (y) =>
    tlsOption(y, true)
      .option('listen', { alias: 'l', type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
      .option('advertise', { type: 'string', describe: 'the address daemons and clients dial, HOST or HOST:PORT (needed with a wildcard --listen)' })
      .option('port', portOption('port', 0, { alias: 'p', default: 1982, describe: 'port to listen on (0: any free port)' }))
      .option('data', { alias: 'd', type: 'string', requiresArg: true, describe: 'directory for the cluster state (the local store: one coordinator); not with --etcd' })
      .option('etcd', {
        type: 'string',
        requiresArg: true,
        describe: 'keep the cluster state in etcd instead, URL[,URL...]: every coordinator with the same --etcd and --prefix campaigns, one leads',
        coerce: parseEtcdEndpoints,
      })
      .option('prefix', { type: 'string', default: '/kv/default', requiresArg: true, describe: "with --etcd: the key prefix of this cluster's state" })
      .option('etcd-lease-ttl-seconds', wholeNumberOption('etcd-lease-ttl-seconds', { min: 1, max: 60, unit: 'seconds' }, {
        default: leaderLeaseTtlSecondsDefault,
        describe: "with --etcd: the leader's lease; a dead leader's successor takes over this long after it stopped",
      }))
      .check((argv) => {
        if (argv.etcd && argv.data !== undefined) throw badRequest('--data is for the local store; with --etcd the cluster state lives in etcd');
        if (!argv.etcd && argv.data === undefined) throw badRequest('the coordinator needs --data DIR (the local store) or --etcd URL[,URL...]');
        if (!/^\/[^\0]*[^/]$/.test(argv.prefix)) throw badRequest(`--prefix must start with / and not end with one, not ${JSON.stringify(argv.prefix)}`);
        return true;
      })
      .option('restore', { type: 'string', describe: "start from a backup's coordinator.bin (read-only; --data must be new, or the --etcd --prefix empty)" })
      .option('metrics-port', portOption('metrics-port', 0, { describe: 'serve Prometheus metrics at http://LISTEN:PORT/metrics (0: any free port, logged); off by default' }))
      .option('heartbeat-interval-ms', msOption('heartbeat-interval-ms', 1, { default: heartbeatIntervalMsDefault, describe: 'how often daemons renew their read leases (their heartbeats)' }))
      .option('heartbeat-timeout-ms', msOption('heartbeat-timeout-ms', 1, { default: heartbeatTimeoutMsDefault, describe: 'silence after which a daemon is not available (its read lease ends 5% + 100 ms sooner)' }))
      .option('value-bytes-max', wholeNumberOption('value-bytes-max', { min: 1, max: frameBytesMax, unit: 'bytes' }, {
        describe: `largest stored value, in bytes, on every daemon (default ${valueBytesMaxDefault}; kept in the cluster config)`,
      }))
      .option('fault-stall-backup-at', {
        type: 'string',
        hidden: true,
        requiresArg: true,
        describe: 'testing only: STATE:MS, stall backups on entering STATE',
        coerce: (text: string) => {
          const [state, ms] = text.split(':');
          if (!backupStates.includes(state as BackupState) || !Number.isSafeInteger(Number(ms))) throw badRequest(`--fault-stall-backup-at takes STATE:MS, STATE one of ${backupStates.join(', ')}`);
          return { state: state as BackupState, ms: Number(ms) };
        },
      })
      .option('fault-stall-after-freeze-ms', msOption('fault-stall-after-freeze-ms', 0, { default: 0, hidden: true, describe: 'testing only: stall backups after freezing' }))
      .example('kv coordinator --port 1982 --data ./coord', '')
      .example('kv coordinator --listen 0.0.0.0 --advertise db1.example --data ./coord', '')
      .example('kv coordinator --etcd http://h1:2379,http://h2:2379,http://h3:2379 --prefix /kv/prod --listen h1', '')
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
        ...(argv.etcd && { etcd: { endpoints: argv.etcd, prefix: argv.prefix, leaseTtlSeconds: argv['etcd-lease-ttl-seconds'] } }),
        ...(argv.restore === undefined ? {} : { restoreFrom: argv.restore }),
        heartbeatIntervalMs: argv['heartbeat-interval-ms'],
        heartbeatTimeoutMs: argv['heartbeat-timeout-ms'],
        ...(argv['value-bytes-max'] === undefined ? {} : { valueBytesMax: argv['value-bytes-max'] }),
        faultStallAfterFreezeMs: argv['fault-stall-after-freeze-ms'],
        metricsPort: argv['metrics-port'],
        ...(argv['fault-stall-backup-at'] && { faultStallAt: argv['fault-stall-backup-at'] }),
        tls: tlsOf(argv),
        log,
      }),
    );
  },
};

/** --etcd's endpoints: http(s)://HOST:PORT, comma separated. */
function parseEtcdEndpoints(text: string): string[] {
  const endpoints = text.split(',').map((e) => e.trim());
  for (const endpoint of endpoints) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      url = undefined;
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.port === '' || (url.pathname !== '/' && url.pathname !== '')) {
      throw badRequest(`--etcd takes URL[,URL...] like http://127.0.0.1:2379; ${JSON.stringify(endpoint)} is not one`);
    }
  }
  return [...new Set(endpoints.map((e) => e.replace(/\/$/, '')))];
}

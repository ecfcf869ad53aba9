import type { CommandModule } from 'yargs';
import { Client } from '../../shared/client.js';
import { createLogger } from '../../shared/log.js';
import { badRequest } from '../../shared/errors.js';
import { coordinatorOption, jsonOption, tlsOf, wholeNumberOption, type TlsArgs } from '../options.js';
import { rsyncIoTimeoutSeconds } from '../../shared/limits.js';
import { fail } from '../run.js';
import { backupOptions } from './backup.js';
import { ownerName } from '../backup/owner.js';
import { managerTool, preflight, runManager } from '../backup/manager.js';
import { createProgress } from '../backup/progress.js';
import { formatBytes } from '../backup/report.js';

type Args = { 'all-replicas': boolean; coordinator: string; 'timeout-ms': number; 'backup-dir': string; keep?: number; rsh?: string; 'io-timeout-seconds': number; json: boolean; 'lease-ms': number; 'deadline-ms': number; 'frozen-ms-max': number } & TlsArgs;

export const backupManagerCommand: CommandModule<object, Args> = {
  command: 'backup-manager',
  describe: 'take a consistent, incremental backup of the whole cluster into DIR/<UTC time>/',
  builder: (y) =>
    backupOptions(jsonOption(coordinatorOption(y)))
      .option('backup-dir', { type: 'string', demandOption: true, describe: 'where backups are kept' })
      .option('keep', { type: 'number', describe: 'keep only the newest N complete backups' })
      .option('one-replica', { type: 'boolean', describe: 'copy one replica of each partition (the default)' })
      .option('all-replicas', { type: 'boolean', default: false, describe: 'copy every replica, not one per partition' })
      .option('rsh', { type: 'string', describe: 'remote shell for daemons on other hosts (rsync -e), e.g. "ssh -p 22"' })
      .option('io-timeout-seconds', wholeNumberOption('io-timeout-seconds', { min: 1 }, {
        default: rsyncIoTimeoutSeconds, describe: 'seconds a copy may move no data before the backup fails (rsync --timeout): a cut-off daemon host',
      }))
      .check((argv) => {
        if (argv['one-replica'] && argv['all-replicas']) throw badRequest('--one-replica and --all-replicas exclude each other: give one');
        if (argv.keep !== undefined && (!Number.isInteger(argv.keep) || argv.keep < 1)) throw badRequest('--keep must be a whole number of at least 1');
        return true;
      })
      .example('kv backup-manager --backup-dir /backups --keep 7', ''),
  handler: async (argv) => {
    const log = createLogger('backup-manager');
    const controller = new AbortController();
    const interrupt = () => controller.abort();
    process.on('SIGINT', interrupt);
    process.on('SIGTERM', interrupt);
    let client: Client | undefined;
    try {
      preflight(argv['backup-dir']); // rsync and the directory, before we touch the cluster
      client = await Client.connect(argv.coordinator, { subscribe: false, timeoutMs: argv['timeout-ms'], tls: tlsOf(argv) });
      const summary = await runManager(client, {
        root: argv['backup-dir'],
        keep: argv.keep,
        rsh: argv.rsh,
        ioTimeoutSeconds: argv['io-timeout-seconds'],
        leaseMs: argv['lease-ms'],
        deadlineMs: argv['deadline-ms'],
        frozenMsMax: argv['frozen-ms-max'],
        owner: ownerName(managerTool),
        replicas: argv['all-replicas'] ? 'all' : 'one',
        log,
        progress: createProgress(log, 'copying'),
        signal: controller.signal,
      });
      await client.close();
      const t = summary.totals;
      process.stdout.write(
        argv.json
          ? JSON.stringify(summary, null, 2) + '\n'
          : [
              `backup ${summary.name} complete in ${argv['backup-dir']}`,
              `  servers ${t.servers}, files ${t.files}, ${formatBytes(t.bytes)}`,
              `  copied ${formatBytes(t.copiedBytes)} (${formatBytes(t.alwaysCopiedBytes)} of it always copied: write-ahead logs, MANIFEST, CURRENT), ` +
                `hard-linked from ${summary.previous ?? '(no previous backup)'} ${formatBytes(t.linkedBytes)}`,
              `  freeze ${summary.freeze.ms.toFixed(1)} ms (${summary.freeze.beganAt} to ${summary.freeze.endedAt}), ` +
                `frozen ${summary.frozenTotalMs.toFixed(1)} ms in ${summary.attempts} attempt(s), total ${(summary.totalMs / 1000).toFixed(1)} s`,
              '',
            ].join('\n'),
      );
    } catch (error) {
      await client?.close();
      fail(error);
    }
  },
};

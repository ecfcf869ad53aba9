// kv backup NAME: one consistent cut of the whole cluster. The coordinator drives it; this command asks for it,
// writes NAME.coordinator.bin and prints where every daemon put its snapshot.
import { join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { backupDeadlineMsDefault, backupFrozenMsMaxDefault, backupThawReserveMs, freezeLeaseMsDefault } from '../../shared/limits.js';
import { checkWritableDir, writeFileDurably } from '../../shared/durable-file.js';
import { coordinatorOption, jsonOption, msOption } from '../options.js';
import { checkSnapshotName } from '../../shared/names.js';
import { fail, withClient } from '../run.js';
import { formatFreeze } from '../backup/report.js';
import { ownerName } from '../backup/owner.js';

export const backupOptions = <T>(y: import('yargs').Argv<T>) =>
  y
    .option('lease-ms', msOption('lease-ms', 100, { default: freezeLeaseMsDefault, describe: 'daemons thaw by themselves this long after freezing' }))
    .option('deadline-ms', msOption('deadline-ms', 0, { default: backupDeadlineMsDefault, describe: 'keep retrying an unsettled cluster this long' }))
    .option('frozen-ms-max', msOption('frozen-ms-max', 3 * backupThawReserveMs, {
      default: backupFrozenMsMaxDefault,
      describe: 'fail once the cluster has been frozen this long in all, over every attempt',
    }));

export const backupCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; name: string; out: string; json: boolean; 'lease-ms': number; 'deadline-ms': number; 'frozen-ms-max': number }> = {
  command: 'backup <name>',
  describe: 'take one consistent snapshot of every daemon (kept on the daemons) and save the coordinator state',
  builder: (y) =>
    backupOptions(jsonOption(coordinatorOption(y)))
      .positional('name', { type: 'string', demandOption: true, describe: 'a new name: letters, digits, _ : . -', coerce: (name: string) => checkSnapshotName(String(name)) })
      .option('out', { type: 'string', default: '.', describe: 'where NAME.coordinator.bin goes' }),
  handler: (argv) => {
    const out = resolve(argv.out);
    try {
      checkWritableDir(out, 'the --out directory'); // before the cluster is frozen
    } catch (error) {
      fail(error);
    }
    return withClient(argv, async (client) => {
      const result = await client.backup(argv.name, {
        owner: ownerName('kv backup'),
        leaseMs: argv['lease-ms'],
        deadlineMs: argv['deadline-ms'],
        frozenMsMax: argv['frozen-ms-max'],
      });
      const file = join(out, `${argv.name}.coordinator.bin`);
      writeFileDurably(file, result.coordinatorState);
      if (argv.json) {
        process.stdout.write(JSON.stringify({ ...result, coordinatorState: undefined, coordinatorFile: file }, null, 2) + '\n');
        return;
      }
      for (const s of result.servers) process.stdout.write(`${s.serverId} ${s.host} ${s.path}\n`);
      process.stderr.write(`${formatFreeze(result)}\ncoordinator state: ${file}\n`);
    });
  },
};

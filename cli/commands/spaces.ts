import type { CommandModule } from 'yargs';
import { partitionsDefault, partitionsMax } from '../../shared/limits.js';
import { checkSpaceName } from '../../shared/names.js';
import { coordinatorOption, wholeNumberOption } from '../options.js';
import { withClient } from '../run.js';

export const addSpaceCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; name: string; partitions: number; tolerate: number }> = {
  command: 'add-space <name>',
  describe: 'create a space, its partitions spread over the available daemons',
  builder: (y) =>
    coordinatorOption(y)
      .positional('name', { type: 'string', demandOption: true, describe: 'the space name', coerce: (name: string) => checkSpaceName(String(name)) })
      .option('partitions', wholeNumberOption('partitions', { min: 1, max: partitionsMax }, { default: partitionsDefault, describe: 'number of partitions' }))
      .option('tolerate', wholeNumberOption('tolerate', { min: 0 }, { default: 0, describe: 'daemon failures each partition survives' })),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const config = await client.addSpace(argv.name, { partitions: argv.partitions, tolerate: argv.tolerate });
      process.stdout.write(`added space ${argv.name} (config version ${config.version})\n`);
    }),
};

export const serverForgetCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; id: string }> = {
  command: 'server-forget <id>',
  describe: 'remove a dead server for good (refused while it holds the only copy of a partition)',
  builder: (y) => coordinatorOption(y).positional('id', { type: 'string', demandOption: true, describe: 'the server id' }),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const config = await client.forgetServer(String(argv.id));
      process.stdout.write(`forgot server ${argv.id} (config version ${config.version})\n`);
    }),
};

export const rmSpaceCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; name: string }> = {
  command: 'rm-space <name>',
  describe: 'remove a space and all its data',
  builder: (y) => coordinatorOption(y).positional('name', { type: 'string', demandOption: true, coerce: (name: string) => checkSpaceName(String(name)) }),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const config = await client.rmSpace(argv.name);
      process.stdout.write(`removed space ${argv.name} (config version ${config.version})\n`);
    }),
};

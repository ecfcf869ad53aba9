import type { CommandModule } from 'yargs';
import { coordinatorOption, jsonOption } from '../options.js';
import { withClient } from '../run.js';
import { formatConfig } from '../format-config.js';

export const showConfigCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; json: boolean }> = {
  command: 'show-config',
  describe: 'print the cluster config: id, version, flags, servers, spaces and partition map',
  builder: (y) => jsonOption(coordinatorOption(y)),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const { config, cutOff, coordinators } = await client.status();
      process.stdout.write((argv.json ? JSON.stringify(config, null, 2) : formatConfig(config, cutOff, coordinators)) + '\n');
    }),
};

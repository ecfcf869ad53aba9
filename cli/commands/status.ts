import type { CommandModule } from 'yargs';
import { coordinatorOption, jsonOption } from '../options.js';
import { withClient } from '../run.js';
import { formatStatus } from '../format-status.js';

export const statusCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; json: boolean }> = {
  command: 'status',
  describe: 'what to check first: servers up, chains degraded, transfers, read-only, backups, the busiest daemon',
  builder: (y) => jsonOption(coordinatorOption(y)),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const status = await client.status();
      process.stdout.write((argv.json ? JSON.stringify(status, null, 2) : formatStatus(status)) + '\n');
    }),
};

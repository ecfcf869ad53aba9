import type { CommandModule } from 'yargs';
import { coordinatorOption } from '../options.js';
import { withClient } from '../run.js';

const flagCommand = (readOnly: boolean): CommandModule<object, { coordinator: string; 'timeout-ms': number }> => ({
  command: readOnly ? 'set-read-only' : 'set-read-write',
  describe: readOnly ? 'refuse writes cluster-wide (reads go on)' : 'accept writes again (also opens a restored cluster)',
  builder: (y) => coordinatorOption(y),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const config = await client.setReadOnly(readOnly);
      process.stdout.write(`cluster is ${readOnly ? 'read-only' : 'read-write'} (config version ${config.version})\n`);
    }),
});

export const setReadOnlyCommand = flagCommand(true);
export const setReadWriteCommand = flagCommand(false);

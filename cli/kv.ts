#!/usr/bin/env node
// The kv command: one subcommand per file in cli/commands.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { coordinatorCommand } from './commands/coordinator.js';
import { daemonCommand } from './commands/daemon.js';
import { showConfigCommand } from './commands/show-config.js';
import { statusCommand } from './commands/status.js';
import { addSpaceCommand, rmSpaceCommand, serverForgetCommand } from './commands/spaces.js';
import { setReadOnlyCommand, setReadWriteCommand } from './commands/read-only.js';
import { atomicAddCommand, condPutCommand, countCommand, delCommand, getCommand, putCommand, putIfNotExistCommand } from './commands/data.js';
import { upCommand } from './commands/up.js';
import { backupCommand } from './commands/backup.js';
import { backupManagerCommand } from './commands/backup-manager.js';
import { backupReleaseCommand, listBackupsCommand, listSnapshotsCommand, verifyBackupCommand } from './commands/backup-tools.js';
import { certsCommand } from './commands/certs.js';
import { exitCodes } from './exit-codes.js';
import { KvError } from '../shared/errors.js';
import { fail } from './run.js';
import { pino } from 'pino';

const usageError = (message: string): never => {
  process.stderr.write(`kv: ${message}\n(kv --help for usage)\n`);
  process.exit(exitCodes.usage);
};

// Checked before any command runs: pino would throw it from the first logger, as a stack trace.
const logLevels = [...Object.keys(pino.levels.values), 'silent'];
const logLevel = process.env.KV_LOG_LEVEL;
if (logLevel !== undefined && !logLevels.includes(logLevel)) {
  usageError(`KV_LOG_LEVEL is "${logLevel}"; it must be one of ${logLevels.join(', ')} (or unset, for info)`);
}

await yargs(hideBin(process.argv))
  .scriptName('kv')
  // Flags are read by their --kebab-case names only (expanding them to camelCase too names each unknown flag
  // twice), and a flag given again overrides the earlier value, as in most commands, instead of becoming an array
  // that no flag of kv expects.
  .parserConfiguration({ 'camel-case-expansion': false, 'duplicate-arguments-array': false })
  .usage('$0 <command> [options]\n\nA distributed key-value store with coordinated, consistent, incremental backup.')
  .command(upCommand)
  .command(coordinatorCommand)
  .command(daemonCommand)
  .command(showConfigCommand)
  .command(statusCommand)
  .command(addSpaceCommand)
  .command(rmSpaceCommand)
  .command(serverForgetCommand)
  .command(setReadOnlyCommand)
  .command(setReadWriteCommand)
  .command(putCommand)
  .command(putIfNotExistCommand)
  .command(condPutCommand)
  .command(atomicAddCommand)
  .command(getCommand)
  .command(delCommand)
  .command(countCommand)
  .command(backupCommand)
  .command(backupManagerCommand)
  .command(verifyBackupCommand)
  .command(listBackupsCommand)
  .command(listSnapshotsCommand)
  .command(backupReleaseCommand)
  .command(certsCommand)
  .demandCommand(1, 'name a command; kv --help lists them')
  .strict()
  .help()
  .alias('h', 'help')
  .version()
  .fail((message, error) => {
    // yargs' own complaints, and a flag's coerce or check that threw (yargs rewraps those): a usage error, one line
    // with the code every kv error line carries, exit 2. Anything else came from a command and keeps its code.
    if (!error || error.name === 'YError' || (error instanceof KvError && error.code === 'BAD_REQUEST')) {
      usageError(`${error?.message ?? message} (BAD_REQUEST)`);
    }
    fail(error);
  })
  .parseAsync();

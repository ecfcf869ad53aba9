// put, get, del, count: one key (or one space) at a time, for people and scripts.
import type { CommandModule } from 'yargs';
import { coordinatorOption } from '../options.js';
import { withClient } from '../run.js';
import { attrsToJson, parseAttrs } from '../attrs-json.js';
import { exitCodes } from '../exit-codes.js';
import { fail } from '../run.js';

type KeyArgs = { coordinator: string; 'timeout-ms': number; space: string; key: string };

export const putCommand: CommandModule<object, KeyArgs & { value: string }> = {
  command: 'put <space> <key> <value>',
  describe: 'set attributes of a key (a JSON object; other attributes are kept)',
  builder: (y) =>
    coordinatorOption(y)
      .positional('space', { type: 'string', demandOption: true })
      .positional('key', { type: 'string', demandOption: true })
      .positional('value', { type: 'string', demandOption: true, describe: 'JSON object, e.g. \'{"name":"ada"}\'' }),
  handler: (argv) => {
    let attrs;
    try {
      attrs = parseAttrs(argv.value);
    } catch (error) {
      fail(error);
    }
    return withClient(argv, (client) => client.put(argv.space, String(argv.key), attrs));
  },
};

export const getCommand: CommandModule<object, KeyArgs> = {
  command: 'get <space> <key>',
  describe: "print a key's attributes as JSON (exit 4 when absent)",
  builder: (y) => coordinatorOption(y).positional('space', { type: 'string', demandOption: true }).positional('key', { type: 'string', demandOption: true }),
  handler: (argv) =>
    withClient(argv, async (client) => {
      const value = await client.get(argv.space, String(argv.key));
      if (value === undefined) {
        process.stderr.write(`kv: no key "${argv.key}" in ${argv.space}\n`);
        return exitCodes.notFound;
      }
      process.stdout.write(attrsToJson(value) + '\n');
      return exitCodes.ok;
    }),
};

export const delCommand: CommandModule<object, KeyArgs> = {
  command: 'del <space> <key>',
  describe: 'delete a key (exit 4 when it was absent)',
  builder: (y) => coordinatorOption(y).positional('space', { type: 'string', demandOption: true }).positional('key', { type: 'string', demandOption: true }),
  handler: (argv) =>
    withClient(argv, async (client) => ((await client.del(argv.space, String(argv.key))) ? exitCodes.ok : exitCodes.notFound)),
};

export const countCommand: CommandModule<object, { coordinator: string; 'timeout-ms': number; space: string }> = {
  command: 'count <space>',
  describe: 'print the number of keys in a space',
  builder: (y) => coordinatorOption(y).positional('space', { type: 'string', demandOption: true }),
  handler: (argv) =>
    withClient(argv, async (client) => {
      process.stdout.write(`${await client.count(argv.space)}\n`);
    }),
};

// put, put-if-not-exist, cond-put, atomic-add, get, del, count: one key (or one space) at a time, for people and
// scripts. Input is checked before the cluster is asked; a condition that does not hold exits 6.
import type { Argv, CommandModule } from 'yargs';
import { KvError } from '../../shared/errors.js';
import type { Attrs } from '../../shared/protocol.js';
import type { Client } from '../../shared/client.js';
import { coordinatorOption } from '../options.js';
import { fail, withClient } from '../run.js';
import { attrsToJson, parseAttrs, parseDeltas } from '../attrs-json.js';
import { exitCodes } from '../exit-codes.js';
import { valueText } from '../value-input.js';

type ClusterArgs = { coordinator: string; 'timeout-ms': number };
type KeyArgs = ClusterArgs & { space: string; key: string };
type ValueArgs = KeyArgs & { value?: string; file?: string };

const keyed = <T>(y: Argv<T>) =>
  coordinatorOption(y).positional('space', { type: 'string', demandOption: true }).positional('key', { type: 'string', demandOption: true });

/** The value, as the last positional or from --file. */
const valued = <T>(y: Argv<T>) =>
  y
    .positional('value', { type: 'string', describe: 'JSON object, e.g. \'{"name":"ada"}\'; {"$bytes":"<base64>"} for bytes' })
    .option('file', { type: 'string', requiresArg: true, describe: 'read the value from FILE instead (- for stdin)' });

/** A condition that did not hold, said with the key it was about. */
const onKey = (argv: KeyArgs) => (error: unknown) => {
  if (error instanceof KvError && error.code === 'CONDITION_FAILED') {
    throw new KvError('CONDITION_FAILED', `key "${argv.key}" in ${argv.space}: ${error.message}`);
  }
  throw error;
};

/** Reads and checks the input first (a bad one never reaches the cluster), then writes with it. */
async function writeWith<A extends KeyArgs, I>(argv: A, input: () => I | Promise<I>, work: (client: Client, input: I) => Promise<number | void>) {
  let parsed: I;
  try {
    parsed = await input();
  } catch (error) {
    fail(error);
  }
  return withClient(argv, (client) => work(client, parsed).catch(onKey(argv)));
}

export const putCommand: CommandModule<object, ValueArgs> = {
  command: 'put <space> <key> [value]',
  describe: 'set attributes of a key (a JSON object; other attributes are kept)',
  builder: (y) => valued(keyed(y)).example('kv put users ada \'{"name":"Ada"}\'', '').example('kv put users ada --file ada.json', ''),
  handler: async (argv) =>
    writeWith(argv, async () => parseAttrs(await valueText(argv)), (client, attrs) => client.put(argv.space, String(argv.key), attrs)),
};

export const putIfNotExistCommand: CommandModule<object, ValueArgs> = {
  command: 'put-if-not-exist <space> <key> [value]',
  describe: 'store a key only if it is absent (exit 6 when it exists)',
  builder: (y) => valued(keyed(y)),
  handler: async (argv) =>
    writeWith(argv, async () => parseAttrs(await valueText(argv)), (client, attrs) => client.putIfNotExist(argv.space, String(argv.key), attrs)),
};

export const condPutCommand: CommandModule<object, ValueArgs & { expect: string }> = {
  command: 'cond-put <space> <key> <expect> [value]',
  describe: 'set attributes only if the key has every attribute of EXPECT with that value (exit 6 otherwise)',
  builder: (y) =>
    valued(keyed(y).positional('expect', { type: 'string', demandOption: true, describe: 'JSON object of the attributes to compare' }))
      .example('kv cond-put users ada \'{"visits":1}\' \'{"vip":true}\'', 'sets vip only while visits is 1'),
  handler: async (argv) =>
    writeWith(
      argv,
      async (): Promise<[Attrs, Attrs]> => [parseAttrs(argv.expect, 'the condition'), parseAttrs(await valueText(argv))],
      (client, [expect, attrs]) => client.condPut(argv.space, String(argv.key), expect, attrs),
    ),
};

export const atomicAddCommand: CommandModule<object, KeyArgs & { deltas: string }> = {
  command: 'atomic-add <space> <key> <deltas>',
  describe: 'add to numeric attributes (absent ones count as 0) and print the new value',
  builder: (y) =>
    keyed(y)
      .positional('deltas', { type: 'string', demandOption: true, describe: 'JSON object of numbers, e.g. \'{"visits":1}\'' })
      .example('kv atomic-add users ada \'{"visits":1}\'', ''),
  handler: async (argv) =>
    writeWith(argv, () => parseDeltas(argv.deltas), async (client, deltas) => {
      process.stdout.write(attrsToJson(await client.atomicAdd(argv.space, String(argv.key), deltas)) + '\n');
    }),
};

export const getCommand: CommandModule<object, KeyArgs> = {
  command: 'get <space> <key>',
  describe: "print a key's attributes as JSON (exit 4 when absent)",
  builder: (y) => keyed(y),
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
  builder: (y) => keyed(y),
  handler: (argv) =>
    withClient(argv, async (client) => ((await client.del(argv.space, String(argv.key))) ? exitCodes.ok : exitCodes.notFound)),
};

export const countCommand: CommandModule<object, ClusterArgs & { space: string }> = {
  command: 'count <space>',
  describe: 'print the number of keys in a space',
  builder: (y) => coordinatorOption(y).positional('space', { type: 'string', demandOption: true }),
  handler: (argv) =>
    withClient(argv, async (client) => {
      process.stdout.write(`${await client.count(argv.space)}\n`);
    }),
};

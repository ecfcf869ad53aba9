// Flags several commands share.
import type { Argv } from 'yargs';
import { parseAddress, formatAddress } from '../shared/address.js';
import { requestTimeoutMsDefault } from '../shared/limits.js';

export const defaultCoordinator = () => process.env.KV_COORDINATOR ?? '127.0.0.1:1982';

export const coordinatorOption = <T>(yargs: Argv<T>) =>
  yargs.option('timeout-ms', {
    type: 'number',
    default: requestTimeoutMsDefault,
    describe: 'how long one operation may take, retries included',
  }).option('coordinator', {
    alias: 'c',
    type: 'string',
    default: defaultCoordinator(),
    defaultDescription: '$KV_COORDINATOR or 127.0.0.1:1982',
    describe: 'the coordinator, HOST:PORT',
    coerce: (text: string) => formatAddress(parseAddress(text, 1982)),
  });

export const jsonOption = <T>(yargs: Argv<T>) =>
  yargs.option('json', { type: 'boolean', default: false, describe: 'print JSON for scripts' });

// Flags several commands share, and the one way a numeric flag is declared: checked by the parser, so a bad value
// is a usage error (exit 2) in the user's terms, never NaN passed on to the cluster.
import type { Argv, Options } from 'yargs';
import { parseAddress, formatAddress } from '../shared/address.js';
import { badRequest } from '../shared/errors.js';
import { requestTimeoutMsDefault, requestTimeoutMsMax } from '../shared/limits.js';

export const defaultCoordinator = () => process.env.KV_COORDINATOR ?? '127.0.0.1:1982';

/**
 * A flag that takes one whole number from `min` to `max` (no upper bound when `max` is absent). yargs reads the
 * text as a number (NaN when it is not one); this turns anything outside the range into one line naming the flag.
 */
type NumberFlag = Pick<Options, 'describe' | 'alias' | 'hidden' | 'defaultDescription'> & { default?: number };

export function wholeNumberOption<O extends NumberFlag>(flag: string, range: { min: number; max?: number; unit?: string }, options: O) {
  const number = range.unit ? `a whole number of ${range.unit}` : 'a whole number';
  const allowed = range.max === undefined ? `${number}, at least ${range.min}` : `${number} from ${range.min} to ${range.max}`;
  return {
    ...options,
    type: 'number' as const,
    requiresArg: true,
    coerce: (value: unknown): number => {
      const given = value as number;
      if (!Number.isSafeInteger(given) || given < range.min || (range.max !== undefined && given > range.max)) {
        throw badRequest(`--${flag} must be ${allowed}${Number.isNaN(given) ? '' : `, not ${given}`}`);
      }
      return given;
    },
  };
}

/** Milliseconds, at least `min`. */
export const msOption = <O extends NumberFlag>(flag: string, min: number, options: O) =>
  wholeNumberOption(flag, { min, unit: 'milliseconds' }, options);

export const portOption = <O extends NumberFlag>(flag: string, min: 0 | 1, options: O) =>
  wholeNumberOption(flag, { min, max: 65535 }, options);

export const coordinatorOption = <T>(yargs: Argv<T>) =>
  yargs.option('timeout-ms', wholeNumberOption('timeout-ms', { min: 1, max: requestTimeoutMsMax, unit: 'milliseconds' }, {
    default: requestTimeoutMsDefault,
    describe: 'how long one operation may take, retries included',
  })).option('coordinator', {
    alias: 'c',
    type: 'string',
    default: defaultCoordinator(),
    defaultDescription: '$KV_COORDINATOR or 127.0.0.1:1982',
    describe: 'the coordinator, HOST:PORT',
    coerce: (text: string) => formatAddress(parseAddress(text, 1982)),
  });

export const jsonOption = <T>(yargs: Argv<T>) =>
  yargs.option('json', { type: 'boolean', default: false, describe: 'print JSON for scripts' });

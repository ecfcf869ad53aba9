// Flags several commands share, and the one way a numeric flag is declared: checked by the parser, so a bad value
// is a usage error (exit 2) in the user's terms, never NaN passed on to the cluster.
import type { Argv, Options } from 'yargs';
import { parseCoordinators } from '../shared/coordinator-finder.js';
import { badRequest } from '../shared/errors.js';
import { requestTimeoutMsDefault, requestTimeoutMsMax } from '../shared/limits.js';
import { loadTls, type TlsSettings } from '../shared/tls.js';

/** The coordinators when no --coordinator is given: $KV_COORDINATOR (a comma list too), else the local one. */
export const defaultCoordinator = () => process.env.KV_COORDINATOR ?? '127.0.0.1:1982';

/** How --coordinator is described wherever it is taken. */
export const coordinatorsDescription = 'the coordinators, HOST:PORT[,HOST:PORT...]: the one that leads is found among them';

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

/** The TLS flags as parsed (tlsOption checks them). */
export interface TlsArgs {
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'tls-ca'?: string | undefined;
  'token-file'?: string | undefined;
}

/**
 * --tls-cert, --tls-key and --tls-ca, for every command that makes or takes connections: all three (TLS on, with
 * this process's certificate and the cluster CA) or none (TLS off); a client may give --tls-ca and --token-file
 * instead of a certificate. Checked while parsing, so a missing one or an unreadable file is a usage error (exit 2)
 * before anything is started or asked. `server`: a daemon or coordinator, which needs its own certificate.
 */
export const tlsOption = <T>(yargs: Argv<T>, server = false) =>
  yargs
    .option('tls-cert', { type: 'string', requiresArg: true, describe: "TLS on: this process's certificate (kv certs issue), PEM" })
    .option('tls-key', { type: 'string', requiresArg: true, describe: 'TLS on: its private key, PEM' })
    .option('tls-ca', { type: 'string', requiresArg: true, describe: "TLS on: the cluster CA's certificate (kv certs init), PEM" })
    .option('token-file', {
      type: 'string',
      requiresArg: true,
      hidden: server,
      describe: 'TLS on, a client without a certificate: a file holding a token (kv certs token), with --tls-ca',
    })
    .check((argv) => {
      const tls = tlsOf(argv as TlsArgs);
      if (server && (argv as TlsArgs)['token-file'] !== undefined) throw badRequest('--token-file is for clients: a daemon or coordinator proves itself with --tls-cert and --tls-key');
      if (server && tls && !tls.cert) throw badRequest('a daemon or coordinator with TLS on needs --tls-cert and --tls-key');
      return true;
    });

/** The TLS settings the flags name, or undefined for TLS off. */
export const tlsOf = (argv: TlsArgs): TlsSettings | undefined =>
  loadTls({ cert: argv['tls-cert'], key: argv['tls-key'], ca: argv['tls-ca'], token: argv['token-file'] });

export const coordinatorOption = <T>(yargs: Argv<T>) =>
  tlsOption(yargs).option('timeout-ms', wholeNumberOption('timeout-ms', { min: 1, max: requestTimeoutMsMax, unit: 'milliseconds' }, {
    default: requestTimeoutMsDefault,
    describe: 'how long one operation may take, retries included',
  })).option('coordinator', {
    alias: 'c',
    type: 'string',
    default: defaultCoordinator(),
    defaultDescription: '$KV_COORDINATOR or 127.0.0.1:1982',
    describe: coordinatorsDescription,
    // A comma list of HOST:PORT, each checked here (a bad one is a usage error naming it), as Client.connect takes it.
    coerce: (text: string) => parseCoordinators(text).join(','),
  });

export const jsonOption = <T>(yargs: Argv<T>) =>
  yargs.option('json', { type: 'boolean', default: false, describe: 'print JSON for scripts' });

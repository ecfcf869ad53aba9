// What `kv` exits with, so scripts can tell outcomes apart. Listed in the README.
import type { ErrorCode } from '../shared/errors.js';

export const exitCodes = {
  ok: 0,
  /** Anything not listed below. */
  failure: 1,
  /** Bad flags, arguments or KV_LOG_LEVEL, or a request refused as malformed or too big for one message. */
  usage: 2,
  /** The cluster (or a part of it) could not be reached in time; trying again later may work. */
  unavailable: 3,
  /** `kv get` of an absent key, or an unknown space. */
  notFound: 4,
  /** The cluster is read-only. */
  readOnly: 5,
  /** A condition did not hold: kv cond-put, kv put-if-not-exist. */
  conditionFailed: 6,
  /** TLS on: this process's certificate is not one of the cluster's (or the server's is not), or none was given. */
  unauthenticated: 7,
  /** TLS on: the certificate's role may not do this (an admin operation with a client certificate). */
  forbidden: 8,
} as const;

export function exitCodeOf(code: ErrorCode): number {
  switch (code) {
    case 'BAD_REQUEST':
      return exitCodes.usage;
    case 'UNAVAILABLE':
    case 'TIMEOUT':
    case 'CONNECTION_LOST':
    case 'NOT_LEADER':
      return exitCodes.unavailable;
    case 'NO_SUCH_SPACE':
      return exitCodes.notFound;
    case 'READ_ONLY':
      return exitCodes.readOnly;
    case 'CONDITION_FAILED':
      return exitCodes.conditionFailed;
    case 'UNAUTHENTICATED':
      return exitCodes.unauthenticated;
    case 'FORBIDDEN':
      return exitCodes.forbidden;
    default:
      return exitCodes.failure;
  }
}

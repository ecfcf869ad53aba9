// What `kv` exits with, so scripts can tell outcomes apart. Listed in the README.
import type { ErrorCode } from '../shared/errors.js';

export const exitCodes = {
  ok: 0,
  /** Anything not listed below. */
  failure: 1,
  /** Bad flags or arguments, or a request the cluster refused as malformed. */
  usage: 2,
  /** The cluster (or a part of it) could not be reached in time; trying again later may work. */
  unavailable: 3,
  /** `kv get` of an absent key, or an unknown space. */
  notFound: 4,
  /** The cluster is read-only. */
  readOnly: 5,
  /** A condition (cond_put, put_if_not_exist) did not hold. */
  conditionFailed: 6,
} as const;

export function exitCodeOf(code: ErrorCode): number {
  switch (code) {
    case 'BAD_REQUEST':
      return exitCodes.usage;
    case 'UNAVAILABLE':
    case 'TIMEOUT':
    case 'CONNECTION_LOST':
      return exitCodes.unavailable;
    case 'NO_SUCH_SPACE':
      return exitCodes.notFound;
    case 'READ_ONLY':
      return exitCodes.readOnly;
    case 'CONDITION_FAILED':
      return exitCodes.conditionFailed;
    default:
      return exitCodes.failure;
  }
}

// The closed catalogue of kv's errors. A program switches on `code` (a stable contract); the message is for a
// person and may change. The README's error table is checked against `errorCodes` by test/errors.test.ts.

export const errorCodes = [
  'BAD_REQUEST',
  'NO_SUCH_SPACE',
  'SPACE_EXISTS',
  'READ_ONLY',
  'UNAVAILABLE',
  'TIMEOUT',
  'CONDITION_FAILED',
  'STALE_CONFIG',
  'WRONG_SERVER',
  'CLUSTER_MISMATCH',
  'UNKNOWN_SERVER',
  'SERVER_ID_IN_USE',
  'DATA_DIR_LOCKED',
  'DATA_DIR_INVALID',
  'ADDRESS_IN_USE',
  'CONNECTION_LOST',
  'CUT_OFF',
  'NOT_LEADER',
  'BACKUP_IN_PROGRESS',
  'BACKUP_FAILED',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export class KvError extends Error {
  readonly code: ErrorCode;
  /** The config version the sender ran when it raised this, where that helps the receiver catch up. */
  readonly version: number | undefined;

  constructor(code: ErrorCode, message: string, version?: number) {
    super(message);
    this.name = 'KvError';
    this.code = code;
    this.version = version;
  }
}

export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === 'string' && (errorCodes as readonly string[]).includes(value);

export const badRequest = (message: string) => new KvError('BAD_REQUEST', message);

/** Turns anything thrown into a KvError, keeping a KvError as it is. */
export function asKvError(error: unknown): KvError {
  if (error instanceof KvError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new KvError('INTERNAL', message);
}

// The names people give: spaces, and backups (whose names become directory names on every daemon). Each rule is
// checked where the name arrives (the coordinator, the protocol schema) and, with the same words, by the CLI
// before anything is sent, so a person reads the rule rather than a schema path or a regular expression.
import { badRequest } from './errors.js';
import { spaceNameLengthMax } from './limits.js';

const spaceNamePattern = /^[A-Za-z0-9_.-]+$/;

export function checkSpaceName(name: string): string {
  if (!spaceNamePattern.test(name) || name.length > spaceNameLengthMax) {
    throw badRequest(`space name "${name}" must be 1-${spaceNameLengthMax} letters, digits, '_', '.' or '-'`);
  }
  return name;
}

/** No separators, and never `.` or `..` (the snapshot dir's parents). The protocol schema uses this pattern too. */
export const snapshotNamePattern = '^(?!\\.\\.?$)[A-Za-z0-9_:.-]{1,128}$';
const snapshotName = new RegExp(snapshotNamePattern);

export function checkSnapshotName(name: string): string {
  if (!snapshotName.test(name)) {
    throw badRequest(`backup name "${name}" must be 1-128 letters, digits, '_', ':', '.' or '-', and not "." or ".."`);
  }
  return name;
}

// How backups describe themselves to people.
import type { BackupResult } from '../../shared/protocol.js';

export const formatFreeze = (r: Pick<BackupResult, 'freeze' | 'configVersion' | 'attempts' | 'frozenTotalMs'>): string =>
  `freeze: ${r.freeze.ms.toFixed(1)} ms, from ${r.freeze.beganAt} to ${r.freeze.endedAt} ` +
  `(config version ${r.configVersion}, attempt ${r.attempts}; frozen ${r.frozenTotalMs.toFixed(1)} ms over all attempts)`;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

// verify-backup: re-checks a stored backup. Every file against its server's manifest (full SHA-256), the
// coordinator state's own checksum, that every server holding data has a copy, and that each copy opens as a
// LevelDB (a scratch copy, never in place) whose identity matches.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KvError, asKvError } from '../../shared/errors.js';
import { decodeState } from '../../shared/state-file.js';
import { checkCopy, openAndCount } from './copy-check.js';
import { HashPool } from '../../shared/hash-pool.js';
import * as layout from './layout.js';

export interface ServerVerdict {
  serverId: string;
  ok: boolean;
  files?: number;
  bytes?: number;
  entries?: number;
  problem?: string;
}

export interface Verdict {
  ok: boolean;
  clusterId?: string;
  configVersion?: number;
  problems: string[];
  servers: ServerVerdict[];
}

export async function verifyBackup(backupDir: string): Promise<Verdict> {
  const verdict: Verdict = { ok: true, problems: [], servers: [] };
  const problem = (text: string) => {
    verdict.ok = false;
    verdict.problems.push(text);
  };
  if (!layout.isComplete(backupDir)) problem(`${backupDir} has no backup.json: not a complete backup`);
  let partitions: Array<{ name: string; chain: string[] }> = [];
  try {
    const config = decodeState(readFileSync(layout.coordinatorFile(backupDir)), layout.coordinatorFile(backupDir));
    verdict.clusterId = config.clusterId;
    verdict.configVersion = config.version;
    partitions = config.spaces.flatMap((s) => s.partitions.map((p, i) => ({ name: `partition ${i} of "${s.name}"`, chain: p.chain })));
  } catch (error) {
    problem(`coordinator.bin: ${asKvError(error).message}`);
  }
  const present = layout.serversIn(backupDir);
  // One replica per partition is enough (backup-manager --one-replica); none is a hole in the backup.
  for (const p of partitions.filter((p) => !p.chain.some((id) => present.includes(id)))) {
    problem(`${p.name} has no copy (its replicas were ${p.chain.join(', ')})`);
  }
  // One set of hashing threads for every server's copy (each thread's start is a V8 isolate's).
  const pool = new HashPool();
  try {
    for (const serverId of present) {
      const dir = layout.serverDir(backupDir, serverId);
      try {
        const checked = await checkCopy(dir, undefined, { pool });
        const opened = await openAndCount(dir, dirname(backupDir));
        if (opened.serverId !== serverId || (verdict.clusterId && opened.clusterId !== verdict.clusterId)) {
          throw new KvError('DATA_DIR_INVALID', `the database in ${dir} belongs to server ${opened.serverId} of cluster ${opened.clusterId}`);
        }
        verdict.servers.push({ serverId, ok: true, files: checked.files, bytes: checked.bytes, entries: opened.entries });
      } catch (error) {
        verdict.ok = false;
        verdict.servers.push({ serverId, ok: false, problem: asKvError(error).message });
      }
    }
  } finally {
    await pool.close();
  }
  return verdict;
}

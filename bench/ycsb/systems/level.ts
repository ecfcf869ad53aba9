// The ceiling: the same reads and writes straight against a LevelDB (classic-level, what kv's daemons store
// in) in this process, no network and no replication. Opened like a daemon opens its store (shared/level.ts:
// buffer keys and values, LevelDB's defaults, writes not fsynced).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { openLevel, type Level } from '../../../shared/level.js';
import { progress } from '../../cluster.js';
import type { ProcessRef, System } from '../system.js';

export class LevelSystem implements System {
  readonly name = 'level';
  readonly label = 'classic-level in-process (ceiling)';
  private dir: string | undefined;
  private db: Level | undefined;

  unavailable(): string | undefined {
    return undefined;
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(os.tmpdir(), 'kv-bench-ycsb-level-'));
    progress(`level: classic-level in ${this.dir}`);
    this.db = await openLevel(join(this.dir, 'db'));
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.db!.put(Buffer.from(key), value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.db!.get(Buffer.from(key));
  }

  async stop(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    await db?.close().catch(() => {});
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  /** None: its work is done by this process (the event loop and libuv's thread pool) and counted there. */
  processes(): ProcessRef[] {
    return [];
  }

  dataDirs(): Array<{ name: string; path: string }> {
    return this.dir ? [{ name: 'level', path: join(this.dir, 'db') }] : [];
  }

  details(): string {
    return 'classic-level (LevelDB) in the benchmark process, opened as kv daemons open theirs, no fsync';
  }
}

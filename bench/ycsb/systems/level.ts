// A ceiling for kv's storage: the same reads and writes straight against a LevelDB (classic-level, what kv's
// daemons store in) inside each generator process, no network and no replication. Opened like a daemon opens its
// store (shared/level.ts: buffer keys and values, LevelDB's defaults, writes not fsynced). A LevelDB belongs to
// one process, so each generator opens its own under the system's temp dir and loads every key into it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { openLevel, type Level } from '../../../shared/level.js';
import { progress } from '../../cluster.js';
import type { ConnectInfo, ProcessRef, System, SystemClient } from '../system.js';

/** Where generator `generator` (0-based) keeps its LevelDB. */
const levelDir = (dir: string, generator: number) => join(dir, `generator-${generator + 1}`);

export class LevelSystem implements System {
  readonly name = 'level';
  readonly label = 'classic-level in each generator (ceiling)';
  private dir: string | undefined;

  unavailable(): string | undefined {
    return undefined;
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(os.tmpdir(), 'kv-bench-ycsb-level-'));
    progress(`level: classic-level in ${this.dir}, one LevelDB per generator`);
  }

  connectInfo(): ConnectInfo {
    if (this.dir === undefined) throw new Error('level is not started');
    return { kind: 'level', dir: this.dir };
  }

  async stop(): Promise<void> {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  /** None: its work is done by the generators (their event loops and libuv's thread pools) and counted there. */
  processes(): ProcessRef[] {
    return [];
  }

  /** The first generator's LevelDB (each holds every key). */
  dataDirs(): Array<{ name: string; path: string }> {
    return this.dir ? [{ name: 'level (generator 1)', path: levelDir(this.dir, 0) }] : [];
  }

  details(): string {
    return 'classic-level (LevelDB) in each generator process, opened as kv daemons open theirs, no fsync; each generator loads every key';
  }
}

export class LevelClient implements SystemClient {
  readonly local = true;

  private constructor(private readonly db: Level) {}

  static async connect(info: Extract<ConnectInfo, { kind: 'level' }>, generator: number): Promise<LevelClient> {
    return new LevelClient(await openLevel(levelDir(info.dir, generator)));
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.db.put(Buffer.from(key), value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.db.get(Buffer.from(key));
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

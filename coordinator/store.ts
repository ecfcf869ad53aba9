// Where the coordinator keeps its state: a LevelDB in its data dir holding one key, written with sync. LevelDB
// gives the atomic replace and the lock that keeps a second coordinator out of the same dir.
import { join } from 'node:path';
import type { ClusterConfig } from '../shared/config.js';
import { makeDir } from '../shared/make-dir.js';
import { openLevel, type Level } from '../shared/level.js';
import { checkDataFormat } from '../shared/data-format.js';
import { decodeState, encodeState } from '../shared/state-file.js';

const stateKey = Buffer.from('cluster-config');

export class CoordinatorStore {
  private constructor(
    private readonly db: Level,
    private readonly location: string,
  ) {}

  static async open(dataDir: string): Promise<CoordinatorStore> {
    makeDir(dataDir, 'the data dir');
    checkDataFormat(dataDir, 'coordinator');
    const location = join(dataDir, 'state');
    return new CoordinatorStore(await openLevel(location), location);
  }

  async load(): Promise<ClusterConfig | undefined> {
    const bytes = await this.db.get(stateKey);
    return bytes === undefined ? undefined : decodeState(bytes, this.location);
  }

  async save(config: ClusterConfig): Promise<void> {
    await this.db.put(stateKey, encodeState(config), { sync: true });
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

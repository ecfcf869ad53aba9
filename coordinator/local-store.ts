// The local config store: a LevelDB in the coordinator's data dir holding the config and the epoch counter,
// written with sync. LevelDB gives the atomic replace and the lock that keeps a second coordinator out of the same
// dir, so the one coordinator on it always leads; each start is a new leadership with the next epoch.
import { join } from 'node:path';
import type { ClusterConfig } from '../shared/config.js';
import { KvError } from '../shared/errors.js';
import { makeDir } from '../shared/make-dir.js';
import { openLevel, type Level } from '../shared/level.js';
import { checkDataFormat } from '../shared/data-format.js';
import { decodeState, encodeState } from '../shared/state-file.js';
import type { ConfigStore, Leadership } from './config-store.js';

const stateKey = Buffer.from('cluster-config');
const epochKey = Buffer.from('epoch');

export class LocalStore implements ConfigStore {
  private leadership: { address: string; epoch: number } | undefined;

  private constructor(
    private readonly db: Level,
    private readonly dataDir: string,
  ) {}

  static async open(dataDir: string): Promise<LocalStore> {
    makeDir(dataDir, 'the data dir');
    checkDataFormat(dataDir, 'coordinator');
    return new LocalStore(await openLevel(join(dataDir, 'state')), dataDir);
  }

  describe() {
    return { kind: 'local' as const, dataDir: this.dataDir };
  }

  private async load(): Promise<ClusterConfig | undefined> {
    const bytes = await this.db.get(stateKey);
    return bytes === undefined ? undefined : decodeState(bytes, join(this.dataDir, 'state'));
  }

  async restore(config: ClusterConfig): Promise<void> {
    const stored = await this.load();
    if (stored) throw new KvError('DATA_DIR_INVALID', `${this.dataDir} already holds cluster ${stored.clusterId}; restore into an empty --data dir`);
    await this.db.put(stateKey, encodeState(config), { sync: true });
  }

  async campaign(self: string): Promise<Leadership> {
    const stored = await this.load();
    const counted = await this.db.get(epochKey);
    // Above the stored config's too: a data dir written before epochs were counted still only grows.
    const epoch = Math.max(counted === undefined ? 0 : Number(counted.toString()), stored?.epoch ?? 0) + 1;
    await this.db.put(epochKey, Buffer.from(String(epoch)), { sync: true });
    this.leadership = { address: self, epoch };
    const db = this.db;
    return {
      epoch,
      stored,
      leading: true,
      previousLeaderMsMax: 0,
      save: (config) => db.put(stateKey, encodeState(config), { sync: true }),
      onEnd: () => {},
      resign: async () => {},
    };
  }

  leader() {
    return this.leadership;
  }

  async members(): Promise<string[]> {
    return this.leadership ? [this.leadership.address] : [];
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

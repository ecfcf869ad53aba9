// A generator process's client for a system the parent started: one constructor per kind of ConnectInfo.
import type { ConnectInfo, SystemClient } from './system.js';
import { EtcdClient } from './systems/etcd.js';
import { KvClient } from './systems/kv.js';
import { LevelClient } from './systems/level.js';
import { NullClient } from './systems/null.js';
import { RedisClient } from './systems/redis.js';

/** Connects generator `generator` (0-based) to the system in info. */
export async function connectClient(info: ConnectInfo, generator: number): Promise<SystemClient> {
  switch (info.kind) {
    case 'kv':
      return KvClient.connect(info);
    case 'redis':
      return RedisClient.connect(info);
    case 'etcd':
      return EtcdClient.connect(info);
    case 'level':
      return LevelClient.connect(info, generator);
    case 'null':
      return new NullClient();
  }
}

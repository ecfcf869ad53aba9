// The config log's staged change (coordinator/config-log.ts, `changeAndStage`): persisted with the change before it,
// published only when told, and nothing else changed in between. On the real local store (LevelDB in a temp dir); the daemons'
// connections are stand-ins that record what is sent to them.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ConfigLog } from '../coordinator/config-log.js';
import { LocalStore } from '../coordinator/local-store.js';
import * as cluster from '../coordinator/cluster.js';
import type { Leadership } from '../coordinator/config-store.js';
import type { Connection } from '../shared/connection.js';
import type { Message } from '../shared/protocol.js';
import { KvError } from '../shared/errors.js';

async function setUp(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'kv-config-log-'));
  const store = await LocalStore.open(dir);
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const real = await store.campaign('127.0.0.1:1');
  const saved: number[] = [];
  let failSaves = 0;
  const leadership: Leadership = {
    ...real,
    leading: true,
    save: async (config) => {
      if (failSaves > 0) {
        failSaves--;
        throw new KvError('INTERNAL', 'cannot save the config: no space left on device');
      }
      await real.save(config);
      saved.push(config.version);
    },
  };
  const published: number[] = [];
  const daemon = { send: (m: Message) => m.t === 'config' && published.push(m.config.version) } as unknown as Connection;
  const log = new ConfigLog(leadership, cluster.newCluster('c1'), {
    placement: () => ({ settled: true }),
    daemons: () => [daemon],
    log: pino({ level: 'silent' }),
  });
  await log.begin();
  return { log, saved, published, failNextSave: () => void failSaves++ };
}

/** Lets every pending callback and I/O of this moment run (the store's save is real I/O). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

t.test('changeAndStage: one save for both, the first published, the second when told, every other change waiting', async (t) => {
  const { log, saved, published } = await setUp(t);
  const start = log.current.version;
  const { changed, staged } = await log.changeAndStage((c) => cluster.setReadOnly(c, true), (c) => cluster.setReadOnly(c, false));
  t.same(saved.slice(-1), [start + 2], 'one save, of the config after both, before it resolves');
  t.equal(saved.filter((v) => v > start).length, 1, 'the first config is never stored on its own');
  t.same(published, [start + 1], 'the first is published');
  t.equal(changed.readOnly, true);
  t.equal(log.current.version, start + 1, 'and current: the second is not, daemons do not have it');
  t.equal(staged.config.version, start + 2);

  let changed2 = false;
  const change = log.change((c) => cluster.setReadOnly(c, true)).then((c) => ((changed2 = true), c));
  await settle();
  t.notOk(changed2, 'a change asked for meanwhile waits');
  t.equal(saved.filter((v) => v > start).length, 1, 'and has not even been saved');

  const config = staged.publish();
  t.equal(config.version, start + 2);
  t.equal(config.readOnly, false, 'the second transition, applied on top of the first');
  t.same(staged.publish(), config, 'publishing again returns the same config');
  const after = await change;
  t.same(published, [start + 1, start + 2, start + 3], 'published once, then the change that waited, in order');
  t.equal(after.readOnly, true, 'the waiting change applied on top of the staged one');
});

t.test('changeAndStage whose save fails rejects, publishes nothing and holds nothing', async (t) => {
  const { log, published, failNextSave } = await setUp(t);
  const start = log.current.version;
  failNextSave();
  await t.rejects(log.changeAndStage((c) => cluster.setReadOnly(c, true), (c) => cluster.setReadOnly(c, false)), { code: 'INTERNAL' });
  t.same(published, [], 'nothing published');
  t.equal(log.current.version, start);
  const config = await log.change((c) => cluster.setReadOnly(c, true));
  t.equal(config.version, start + 1, 'the next change goes through at once');
  t.same(published, [start + 1]);
});

// Daemons on other hosts are copied as host:path through --rsh. A daemon listening on 127.0.0.2 is not on any
// local interface's address, so backup-manager treats it as remote; the "remote shell" here runs rsync's server
// half locally, as ssh would on the other host.
import t from 'tap';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { networkInterfaces } from 'node:os';
import { Client } from '../shared/client.js';
import { kv, startCoordinator, startDaemon, tempDir } from './helpers/cluster.js';

const remoteHost = '127.0.0.2';
const isLocal = Object.values(networkInterfaces()).flat().some((i) => i?.address === remoteHost);

t.test('daemons on another host are copied over --rsh', { skip: isLocal && `${remoteHost} is a local address here` }, async (t) => {
  const dir = tempDir(t);
  const rsh = join(dir, 'fake-ssh');
  const log = join(dir, 'rsh.log');
  // ssh is called as: <rsh> <host> rsync --server ...; drop the host, note the call, run the rest here.
  writeFileSync(rsh, `#!/bin/sh\necho "$1" >> ${log}\nshift\nexec "$@"\n`);
  chmodSync(rsh, 0o755);

  const coordinator = await startCoordinator(t);
  await startDaemon(t, coordinator.address, { args: ['--listen', remoteHost] });
  const client = await Client.connect(coordinator.address);
  t.teardown(() => client.close());
  await client.addSpace('s', { partitions: 2 });
  await Promise.all(Array.from({ length: 100 }, (_, i) => client.put('s', `k${i}`, { i })));

  const root = join(dir, 'backups');
  const run = await kv(t, ['backup-manager', '--backup-dir', root, '--rsh', rsh, '--json', '--coordinator', coordinator.address]);
  t.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout) as { name: string; servers: Array<{ serverId: string; host: string }> };
  t.equal(summary.servers[0]!.host, remoteHost);
  t.ok(existsSync(log), 'the copy went through the remote shell');
  const verify = await kv(t, ['verify-backup', join(root, summary.name)]);
  t.equal(verify.code, 0, verify.stdout);
  t.match(verify.stdout, /100 entries/);
});

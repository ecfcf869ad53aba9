// backup-manager's copies with the real rsync binary, through remote shells that stand in for ssh on another host:
// an IPv6 host, a peer that hangs, a remote shell that fails, and the default ssh with its keep-alives.
import t from 'tap';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRsync, copy, defaultRsh, remotePath, rsyncFailure } from '../cli/backup/rsync.js';
import { tempDir } from './helpers/cluster.js';

const rsync = checkRsync();

/** A directory with a few files to copy, and an empty destination. */
function dirs(t: Parameters<typeof tempDir>[0]) {
  const root = tempDir(t);
  const source = join(root, 'source');
  mkdirSync(source);
  for (let i = 0; i < 3; i++) writeFileSync(join(source, `f${i}`), `file ${i}\n`);
  return { root, source, dest: join(root, 'dest') };
}

function script(path: string, body: string): string {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** Fails the test instead of hanging when a copy never ends. */
const settled = <T>(what: string, promise: Promise<T>, ms = 60_000) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms).unref())]);

t.test('an IPv6 host is named in brackets, and rsync reaches it through the remote shell', async (t) => {
  const { root, source, dest } = dirs(t);
  const log = join(root, 'hosts');
  // Called as <rsh> <host> rsync --server ...: note the host, run the rest here.
  const rsh = script(join(root, 'fake-ssh'), `echo "$1" >> ${log}\nshift\nexec "$@"`);
  t.equal(remotePath('fd00::2', '/d'), '[fd00::2]:/d');
  t.equal(remotePath('10.0.0.2', '/d'), '10.0.0.2:/d');
  await settled('the copy', copy({ source: remotePath('fd00::2', source), remote: true, dest, linkDest: undefined, rsh, rsync }).done);
  t.equal(readFileSync(log, 'utf8').trim(), 'fd00::2', 'the remote shell was asked for the IPv6 host, without brackets');
  t.equal(readFileSync(join(dest, 'f2'), 'utf8'), 'file 2\n', 'and the files arrived');
});

t.test('a peer that stops answering fails the copy after the I/O timeout, not never', async (t) => {
  const { root, source, dest } = dirs(t);
  const rsh = script(join(root, 'hung-ssh'), 'exec sleep 600');
  const job = copy({ source: remotePath('10.0.0.2', source), remote: true, dest, linkDest: undefined, rsh, rsync, ioTimeoutSeconds: 2 });
  const error = await settled('the copy into a hung peer', job.done.then(() => undefined, (e: unknown) => e));
  t.match(error, { code: 'BACKUP_FAILED', message: /timeout/i }, 'rsync gave up on its own, and said why');
});

t.test("the remote shell's own error reaches the operator, not only rsync's closing lines", async (t) => {
  const { root, source, dest } = dirs(t);
  const rsh = script(join(root, 'refused-ssh'), 'echo "root@10.0.0.2: Permission denied (publickey)." >&2\nexit 255');
  const error = await settled('the refused copy', copy({ source: remotePath('10.0.0.2', source), remote: true, dest, linkDest: undefined, rsh, rsync }).done.then(() => undefined, (e: unknown) => e));
  t.match(error, { code: 'BACKUP_FAILED', message: /Permission denied \(publickey\)/ });
  t.notMatch((error as Error).message, /connection unexpectedly closed/, 'the generic lines are left out when a cause is there');
  t.equal(rsyncFailure('rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\nrsync error: unexplained error (code 255) at io.c(232)\n'),
    'rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]; rsync error: unexplained error (code 255) at io.c(232)', 'they are kept when they are all there is');
});

t.test('without --rsh, a remote copy runs ssh with keep-alives and no password prompt', async (t) => {
  const { root, source, dest } = dirs(t);
  const bin = join(root, 'bin');
  mkdirSync(bin);
  const log = join(root, 'ssh-args');
  // A stand-in for ssh on PATH: note its arguments, skip the options and the host, run the rest here.
  script(join(bin, 'ssh'), `echo "$@" >> ${log}\nwhile [ "$1" = "-o" ]; do shift 2; done\nshift\nexec "$@"`);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  t.teardown(() => void (process.env.PATH = path));
  await settled('the copy', copy({ source: remotePath('10.0.0.2', source), remote: true, dest, linkDest: undefined, rsh: undefined, rsync }).done);
  const args = readFileSync(log, 'utf8');
  for (const option of defaultRsh.split(' ').filter((word) => word.includes('='))) t.ok(args.includes(option), `ssh got -o ${option}`);
  t.match(args, /-o ServerAliveInterval=5 -o ServerAliveCountMax=3 10\.0\.0\.2 rsync --server/, 'then the host and rsync\'s server half');
  t.equal(readFileSync(join(dest, 'f0'), 'utf8'), 'file 0\n');
});

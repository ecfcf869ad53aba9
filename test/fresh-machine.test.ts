// A fresh machine (Node and npm, nothing else): `npm test` stops before building, with the one line to run,
// instead of failing every backup test for want of rsync.
import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { tempDir } from './helpers/cluster.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function npmTest(path: string): Promise<{ code: number; stdout: string; stderr: string }> {
  // Without npm_* variables: under `npm test` they would tell the inner npm about the outer run.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')));
  return new Promise((resolve) => {
    // `--ignore-scripts=false`, the default, spelled out: the pretest check is the subject.
    execFile(process.execPath, [npmCli(), 'test', '--ignore-scripts=false', '--', '--help'], { cwd: repoRoot, env: { ...env, PATH: path }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

/** npm's own script: the one running us under `npm test`, else the one beside this node (where Node's installers put it). */
function npmCli(): string {
  return process.env.npm_execpath ?? join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
}

t.test('without rsync on PATH, npm test stops at once with the line to run', async (t) => {
  // A PATH with node (npm's scripts run `node`) and sh, and none of rsync.
  const bin = join(tempDir(t), 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  const started = Date.now();
  const result = await npmTest(bin);
  t.not(result.code, 0, 'npm test fails');
  t.match(result.stderr, /^npm test needs rsync\b.*: apt-get install -y rsync\b.*$/m, 'and says what to install');
  t.notMatch(result.stdout + result.stderr, /tsc -p|# \{ total/, 'before building or running any test');
  t.comment(`stopped after ${Date.now() - started} ms`);
});

t.test('with rsync on PATH, the check passes', async (t) => {
  const result = await new Promise<number>((resolve) => {
    execFile('sh', [join(repoRoot, 'test', 'system-packages.sh')], { timeout: 10_000 }, (error) =>
      resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : 1),
    );
  });
  t.equal(result, 0, 'test/system-packages.sh exits 0 on this machine, which has rsync, ssh, sshd and ip');
});

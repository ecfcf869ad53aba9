// The package as a user gets it: `npm pack`, `npm install` of the tarball into a fresh project, a strict
// `module: nodenext` TypeScript consumer type-checked against the shipped declarations and run against a real
// cluster, and the installed `kv` bin.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startCluster, tempDir } from './helpers/cluster.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const typesNodeVersion = (JSON.parse(readFileSync(join(repoRoot, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version;

// npm run sets npm_* variables (the running package's prefix, config, lifecycle); the consumer's npm must not see them.
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** An assertion's message: what was run, and on failure what it said. */
const said = (what: string, r: Run) => (r.code === 0 ? what : `${what}: ${r.stdout}${r.stderr}`);

function run(command: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr: error?.killed ? `${stderr}\n(killed after ${timeoutMs} ms)` : stderr });
    });
  });
}

const consumerTsconfig = {
  compilerOptions: {
    target: 'ES2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    // As most projects (and this one) build; wrong.ts below shows the shipped declarations resolve to real types.
    skipLibCheck: true,
    types: ['node'],
    outDir: 'out',
  },
  files: ['main.ts', 'wrong.ts'],
};

// Uses the client, the error class and the types a program needs, all from the package's one entry point.
const consumer = `
import { Client, KvError, errorCodes, isErrorCode, type Attrs, type ClusterConfig, type ErrorCode } from 'kv';

const address = process.argv[2];
if (address === undefined) throw new Error('usage: node main.js HOST:PORT');
const client: Client = await Client.connect(address, { timeoutMs: 10_000 });
const config: ClusterConfig = await client.addSpace('pkg', { partitions: 4 });
await client.put('pkg', 'ada', { name: 'Ada', visits: 0 });
const added: Attrs = await client.atomicAdd('pkg', 'ada', { visits: 1 });
let refused: ErrorCode | undefined;
try {
  await client.condPut('pkg', 'ada', { visits: 5 }, { vip: true });
} catch (error) {
  if (!(error instanceof KvError)) throw error;
  refused = error.code;
}
const got: Attrs | undefined = await client.get('pkg', 'ada');
await client.close();
let internal = 'importable';
try {
  await import('kv/dist/shared/codec.js' as string);
} catch (error) {
  internal = (error as { code?: string }).code ?? String(error);
}
console.log(JSON.stringify({ version: config.version, added, refused, got, known: isErrorCode('TIMEOUT'), codes: errorCodes.length, internal }));
`;

// Wrong on purpose: the declarations carry real types, so a checker that sees \`any\` would let these through.
const wrongConsumer = `
import { Client, KvError } from 'kv';
const client = await Client.connect('127.0.0.1:1982');
const count: string = await client.count('pkg');
const error = new KvError('NOT_A_CODE', 'x');
await client.put('pkg', 'ada', { nested: { no: 'objects' } });
const version: string = (await client.showConfig()).version;
console.log(count, error, version);
`;

t.test('npm pack, npm install of the tarball, a strict TypeScript consumer and the installed kv bin', async (t) => {
  const dir = tempDir(t, 'kv-package-');

  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], repoRoot);
  t.equal(pack.code, 0, said('npm pack', pack));
  const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = packed!.files.map((f) => f.path);
  for (const needed of ['package.json', 'README.md', 'dist/shared/index.js', 'dist/shared/index.d.ts', 'dist/shared/client.d.ts', 'dist/cli/kv.js', 'dist/daemon/daemon.js', 'dist/coordinator/coordinator.js']) {
    t.ok(files.includes(needed), `the tarball has ${needed}`);
  }
  t.same(files.filter((f) => /^dist\/(test|bench)\/|\.ts$(?<!\.d\.ts)|\.map$|^(shared|cli|daemon|coordinator|test|bench)\//.test(f)), [], 'no tests, benchmarks, sources or source maps');

  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // From npm's cache when it has everything (the repository's own npm ci filled it); from the network otherwise.
  const installArgs = ['install', '--no-audit', '--no-fund', join(dir, packed!.filename), `@types/node@${typesNodeVersion}`];
  let install = await run('npm', [...installArgs, '--offline'], app, 120_000);
  if (install.code !== 0) install = await run('npm', [...installArgs, '--prefer-offline'], app, 240_000);
  t.equal(install.code, 0, said('npm install', install));

  writeFileSync(join(app, 'main.ts'), consumer);
  writeFileSync(join(app, 'wrong.ts'), wrongConsumer);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(consumerTsconfig));
  // One run for both files (tsc emits main.js even though wrong.ts has errors): every error is wrong.ts's.
  const build = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], app);
  const errors = build.stdout.split('\n').filter((line) => line.includes('error TS'));
  t.same(errors.filter((line) => !line.startsWith('wrong.ts(')), [], 'the consumer type-checks');
  t.match(build.stdout, /wrong\.ts\(4,7\): error TS2322/, 'count resolves to a number');
  t.match(build.stdout, /wrong\.ts\(5,27\): error TS2345/, 'KvError takes only a known code');
  t.match(build.stdout, /wrong\.ts\(6,/, 'an attribute value is not an object');
  t.match(build.stdout, /wrong\.ts\(7,7\): error TS2322/, "the config's version is a number");
  t.equal(errors.length, 4, 'no other errors');

  const cluster = await startCluster(t, { daemons: 2 });
  const address = cluster.coordinator.address;
  const main = await run(process.execPath, [join(app, 'out', 'main.js'), address], app, 60_000);
  t.equal(main.code, 0, said('the consumer runs', main));
  const result = JSON.parse(main.stdout) as Record<string, unknown>;
  t.match(result, {
    added: { name: 'Ada', visits: 1 },
    refused: 'CONDITION_FAILED',
    got: { name: 'Ada', visits: 1 },
    known: true,
    internal: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
  }, 'the client works, errors carry their code, and internals are not exported');
  t.ok(Number(result.codes) > 0, 'errorCodes is the catalogue');

  const kvBin = join(app, 'node_modules', '.bin', 'kv');
  const help = await run(kvBin, ['--help'], app, 30_000);
  t.equal(help.code, 0, said('kv --help', help));
  t.match(help.stdout, /kv backup-manager/, 'the help lists the commands');
  const put = await run(kvBin, ['put', 'pkg', 'grace', '{"born":1906}', '-c', address], app, 30_000);
  t.equal(put.code, 0, said('kv put', put));
  const get = await run(kvBin, ['get', 'pkg', 'grace', '-c', address], app, 30_000);
  t.equal(get.code, 0, said('kv get', get));
  t.same(JSON.parse(get.stdout), { born: 1906 }, 'the installed bin reads what it wrote');
});

t.test("the root install carries only what the product and its tests run; the benchmarks' packages are bench/'s", async (t) => {
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  const bench = JSON.parse(readFileSync(join(repoRoot, 'bench', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const name of ['vega', 'vega-lite', 'etcd3', 'ioredis']) {
    t.notOk(`node_modules/${name}` in lock.packages, `the root lock has no ${name}`);
    t.ok(name in bench.dependencies, `bench/package.json has ${name}`);
  }
});

// Runs one benchmark by name, so that `npm run bench -- NAME [args...]` works:
//
//   node dist/bench/run.js [ycsb|throughput|backup|backup-fault|replication|level-round-trip|request-floor|failover|config-store|timeline] [args...]     (default: ycsb)
//
// The benchmark runs in this process, with its own arguments in process.argv as if it had been started directly.
const benchmarks: Record<string, string> = {
  ycsb: './ycsb/run.js',
  throughput: './throughput.js',
  backup: './backup.js',
  'backup-fault': './backup-fault.js',
  replication: './replication.js',
  'level-round-trip': './level-round-trip.js',
  'request-floor': './request-floor.js',
  failover: './failover.js',
  'config-store': './config-store.js',
  timeline: './timeline.js',
};

const [first, ...rest] = process.argv.slice(2);
let name = 'ycsb';
let args = process.argv.slice(2);
if (first !== undefined && !first.startsWith('-')) {
  name = first;
  args = rest;
}
const module = benchmarks[name];
if (module === undefined) {
  process.stderr.write(`bench: no benchmark "${name}"; one of: ${Object.keys(benchmarks).join(', ')}\n`);
  process.exitCode = 2;
} else {
  // Each benchmark reads its options from process.argv (node, script, ...args) and sets process.exitCode.
  process.argv = [process.argv[0]!, process.argv[1]!.replace(/run\.js$/, module.slice(2)), ...args];
  await import(module);
}

import type { CommandModule } from 'yargs';
import { roles, type Role } from '../../shared/roles.js';
import { initAuthority, issueCertificate, issueToken, loopbackHosts } from '../certs/authority.js';
import { tokenTtlHoursDefault, tokenTtlHoursMax } from '../../shared/limits.js';
import { wholeNumberOption } from '../options.js';
import { fail } from '../run.js';
import { badRequest } from '../../shared/errors.js';

const initCommand: CommandModule<object, { dir: string; force: boolean }> = {
  command: 'init',
  describe: 'make a cluster CA: DIR/ca.crt (give it to every process as --tls-ca) and DIR/ca.key (0600; only kv certs issue needs it)',
  builder: (y) =>
    y
      .option('dir', { type: 'string', demandOption: true, describe: 'where the CA goes (created if need be)' })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing CA (every certificate it issued stops working)' })
      .example('kv certs init --dir ./certs', ''),
  handler: (argv) => {
    try {
      const files = initAuthority(argv.dir, argv.force);
      process.stdout.write(`made the cluster CA: ${files.cert} and ${files.key} (keep the key off the cluster's hosts)\n`);
    } catch (error) {
      fail(error);
    }
  },
};

const issueCommand: CommandModule<object, { dir: string; role: Role; name: string; host?: string[]; force: boolean }> = {
  command: 'issue',
  describe: "issue DIR/NAME.key and DIR/NAME.crt, signed by DIR's CA, with the role in the certificate",
  builder: (y) =>
    y
      .option('dir', { type: 'string', demandOption: true, describe: 'the CA directory (kv certs init); the files go there too' })
      .option('role', { choices: roles, demandOption: true, describe: 'daemon and coordinator: cluster members; client: data operations; admin: also the cluster-changing ones' })
      .option('name', { type: 'string', demandOption: true, describe: 'the file names and the certificate CN, e.g. daemon-1' })
      .option('host', {
        type: 'string',
        array: true,
        describe: `the addresses the process is dialled at (IP or DNS names, IPv6 too): --host A B or --host A,B; default for daemon and coordinator: ${loopbackHosts.join(', ')}`,
      })
      .option('force', { type: 'boolean', default: false, describe: 'replace existing files of that name' })
      .example('kv certs issue --dir ./certs --role daemon --name daemon-1 --host 10.0.0.5 db1.example.com', '')
      .example('kv certs issue --dir ./certs --role admin --name ops', ''),
  handler: (argv) => {
    try {
      // The parser keeps the last of a repeated option (kv.ts), so --host A --host B would issue for B alone.
      if (process.argv.filter((arg) => arg === '--host' || arg.startsWith('--host=')).length > 1) {
        throw badRequest('give every address to one --host (--host A B, or --host A,B): a repeated --host would keep only the last');
      }
      const member = argv.role === 'daemon' || argv.role === 'coordinator';
      const hosts = argv.host?.flatMap((host) => String(host).split(',')).filter((host) => host !== '') ?? (member ? loopbackHosts : []);
      const issued = issueCertificate({ dir: argv.dir, role: argv.role, name: argv.name, hosts, force: argv.force });
      const names = issued.sans.length > 0 ? ` for ${issued.sans.join(', ')}` : '';
      process.stdout.write(`issued a ${argv.role} certificate${names}: ${issued.cert} and ${issued.key}\n`);
    } catch (error) {
      fail(error);
    }
  },
};

const tokenCommand: CommandModule<object, { dir: string; role: 'client' | 'admin'; name: string; 'ttl-hours': number; out?: string; force: boolean }> = {
  command: 'token',
  describe: "make a token for a client without a certificate (give it as --token-file, with --tls-ca): a statement of role and expiry signed with DIR's CA key",
  builder: (y) =>
    y
      .option('dir', { type: 'string', demandOption: true, describe: 'the CA directory (kv certs init)' })
      .option('role', { choices: ['client', 'admin'] as const, demandOption: true, describe: 'client: data operations; admin: also the cluster-changing ones' })
      .option('name', { type: 'string', default: 'token', describe: 'who holds it, for the record' })
      .option('ttl-hours', wholeNumberOption('ttl-hours', { min: 1, max: tokenTtlHoursMax, unit: 'hours' }, { default: tokenTtlHoursDefault, describe: 'how long it is valid (it cannot be revoked sooner)' }))
      .option('out', { type: 'string', describe: 'write it to this file (0600) instead of stdout' })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing --out file' })
      .example('kv certs token --dir ./certs --role client --name app --out app.token', ''),
  handler: (argv) => {
    try {
      const token = issueToken(argv.dir, argv.role, argv.name, argv['ttl-hours'], argv.out, argv.force);
      process.stdout.write(argv.out === undefined ? `${token}\n` : `wrote a ${argv.role} token valid for ${argv['ttl-hours']} h to ${argv.out}\n`);
    } catch (error) {
      fail(error);
    }
  },
};

export const certsCommand: CommandModule = {
  command: 'certs <command>',
  describe: 'make a cluster CA, certificates and tokens for TLS (uses openssl)',
  builder: (y) => y.command(initCommand).command(issueCommand).command(tokenCommand).demandCommand(1, 'name a certs command: init, issue or token'),
  handler: () => {},
};

import type { CommandModule } from 'yargs';
import { roles, type Role } from '../../shared/roles.js';
import { initAuthority, issueCertificate, loopbackHosts } from '../certs/authority.js';
import { fail } from '../run.js';

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

export const certsCommand: CommandModule = {
  command: 'certs <command>',
  describe: 'make a cluster CA and certificates for TLS (uses openssl)',
  builder: (y) => y.command(initCommand).command(issueCommand).demandCommand(1, 'name a certs command: init or issue'),
  handler: () => {},
};

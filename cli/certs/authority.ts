// A cluster's certificate authority, made and used with the system's openssl: `kv certs init` makes the CA
// (ca.crt, and ca.key, which only `kv certs issue` needs: keep it off the cluster's hosts), `kv certs issue` a key
// and certificate for one process, its role in the OU (shared/roles.ts) and the addresses it is dialled at as
// SANs, `kv certs token` a token (shared/token.ts) for a client without a certificate. Keys are P-256 (fast to make and to handshake with) and written 0600; nothing is overwritten unless forced.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { KvError, badRequest } from '../../shared/errors.js';
import { caCertificateDays, certificateDays } from '../../shared/limits.js';
import { organizationalUnitOf, type Role } from '../../shared/roles.js';
import { signToken } from '../../shared/token.js';

export const caFiles = (dir: string) => ({ cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') });
export const issuedFiles = (dir: string, name: string) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });

/** The addresses a server certificate names when no --host is given: this host's loopback, as `kv up` dials it. */
export const loopbackHosts = ['127.0.0.1', '::1', 'localhost'];

const keyOptions = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], input?: string): string {
  // Keys are born 0600: openssl creates them under this process's umask.
  const umask = process.umask(0o077);
  let result;
  try {
    result = spawnSync('openssl', args, { encoding: 'utf8', ...(input !== undefined && { input }) });
  } finally {
    process.umask(umask);
  }
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new KvError('UNAVAILABLE', missing ? 'kv certs needs openssl, which is not installed; install it first: apt-get install -y openssl' : `cannot run openssl: ${result.error.message}`);
  }
  if (result.status !== 0) throw new KvError('INTERNAL', `openssl ${args[0]} failed: ${result.stderr.trim().split('\n').slice(-2).join(' ')}`);
  return result.stdout;
}

function refuseExisting(paths: string[], force: boolean): void {
  const there = paths.filter((path) => existsSync(path));
  if (there.length > 0 && !force) throw badRequest(`${there.join(' and ')} already exist${there.length === 1 ? 's' : ''}; give --force to replace ${there.length === 1 ? 'it' : 'them'}`);
}

/** Makes the cluster CA in `dir` (created if need be). */
export function initAuthority(dir: string, force: boolean): { cert: string; key: string } {
  const files = caFiles(dir);
  refuseExisting([files.cert, files.key], force);
  mkdirSync(dir, { recursive: true });
  const id = randomBytes(4).toString('hex');
  openssl([
    'req', '-x509', '-new', ...keyOptions, '-keyout', files.key, '-out', files.cert, '-days', String(caCertificateDays),
    '-subj', `/O=kv/OU=kv-ca/CN=kv cluster CA ${id}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(files.key, 0o600);
  chmodSync(files.cert, 0o644);
  return files;
}

/** A certificate's name: a file name and its CN. */
export function checkCertName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw badRequest(`--name "${name}" must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  return name;
}

/** A --host as a SAN: an IP address (v4 or v6) or a DNS name. */
export function subjectAltName(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare)) return `IP:${bare}`;
  if (/^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(bare)) return `DNS:${bare}`;
  throw badRequest(`--host "${host}" is neither an IP address nor a DNS name`);
}

export interface Issue {
  dir: string;
  role: Role;
  name: string;
  hosts: string[];
  force: boolean;
}

/** Issues `name`'s key and certificate in `dir`, signed by the CA there. */
export function issueCertificate({ dir, role, name, hosts, force }: Issue): { cert: string; key: string; sans: string[] } {
  const ca = caFiles(dir);
  for (const path of [ca.cert, ca.key]) {
    if (!existsSync(path)) throw badRequest(`${path} does not exist: make the CA first (kv certs init --dir ${dir})`);
  }
  const files = issuedFiles(dir, checkCertName(name));
  refuseExisting([files.cert, files.key], force);
  const sans = hosts.map(subjectAltName);
  const extensions = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth,clientAuth'];
  if (sans.length > 0) extensions.push(`subjectAltName=${sans.join(',')}`);
  const request = openssl([
    'req', '-new', ...keyOptions, '-keyout', files.key, '-subj', `/O=kv/OU=${organizationalUnitOf(role)}/CN=${name}`,
    ...extensions.flatMap((extension) => ['-addext', extension]),
  ]);
  chmodSync(files.key, 0o600);
  // A random positive 127-bit serial: unique without a serial file beside the CA.
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  try {
    sign(ca, serial, files.cert, request);
  } catch (error) {
    rmSync(files.key, { force: true }); // no key left without its certificate
    throw error;
  }
  chmodSync(files.cert, 0o644);
  return { ...files, sans };
}

function sign(ca: { cert: string; key: string }, serial: Buffer, out: string, request: string): void {
  openssl([
    'x509', '-req', '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${serial.toString('hex')}`,
    '-days', String(certificateDays), '-sha256', '-copy_extensions', 'copyall', '-out', out,
  ], request);
}

/**
 * The certificates of a local cluster in `dir` (kv up --tls-dir): the CA, one per member and `admin` for the
 * operator, each made only if missing, so a second run reuses them. Members name `host` and loopback.
 */
export function localClusterCertificates(dir: string, host: string, members: Array<{ name: string; role: Role }>): void {
  if (!existsSync(caFiles(dir).cert)) initAuthority(dir, false);
  const hosts = [...new Set([host.replace(/^\[(.*)\]$/, '$1'), ...loopbackHosts])].filter((h) => h !== '0.0.0.0' && h !== '::');
  for (const { name, role } of [...members, { name: 'admin', role: 'admin' as const }]) {
    if (existsSync(issuedFiles(dir, name).cert)) continue;
    issueCertificate({ dir, role, name, hosts: role === 'admin' ? [] : hosts, force: true });
  }
}

/** The --tls-* flags of certificate `name` in `dir`. */
export const tlsFlags = (dir: string, name: string): string[] => {
  const files = issuedFiles(dir, name);
  return ['--tls-cert', files.cert, '--tls-key', files.key, '--tls-ca', caFiles(dir).cert];
};

/** A token for `role`, signed with the CA key in `dir`, valid for `ttlHours`; written 0600 to `out` if given. */
export function issueToken(dir: string, role: 'client' | 'admin', name: string, ttlHours: number, out: string | undefined, force: boolean): string {
  const ca = caFiles(dir);
  let key: Buffer;
  try {
    key = readFileSync(ca.key);
  } catch {
    throw badRequest(`${ca.key} cannot be read: make the CA first (kv certs init --dir ${dir}), or run this where its key is`);
  }
  const token = signToken({ role, name: checkCertName(name), expiresAt: Date.now() + ttlHours * 3_600_000 }, key);
  if (out !== undefined) {
    refuseExisting([out], force);
    writeFileSync(out, token + '\n', { mode: 0o600 });
    chmodSync(out, 0o600);
  }
  return token;
}

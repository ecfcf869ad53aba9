// A lab of hosts for tests that need more than loopback: each host is a Linux network namespace with its own
// addresses (IPv4 10.13.0.N/24 and IPv6 fd00:13::N/64) on a private bridge, and its own disk. Needs root.
//
//   const why = await labUnavailable();   // a reason: t.plan(0, why), the lab tests are skipped
//   const lab = await Lab.start(t, ['coord', 'd1', 'd2', 'client']);
//   const coordinator = await labCoordinator(t, lab.host('coord'));        // kv coordinator on coord's address
//   const d1 = await labDaemon(t, lab.host('d1'), coordinator.address);    // kv daemon on d1's, data on d1's disk
//   await lab.host('client').kv(t, ['add-space', 's', '-c', coordinator.address]);
//   await lab.cut('coord', 'd1');   // silent: packets dropped both ways, no RST, no ICMP
//   await lab.heal('coord', 'd1');  // heal('coord') heals every cut of coord
//   await lab.isolate('d1');        // cut from every other host
//   await lab.powerLoss('d1');      // isolate, then SIGKILL every process of the host; powerOn('d1') brings its network back
//   await lab.startSshd(t, 'd1');   // sshd on d1's addresses; lab.rsh is the ssh command that reaches it from any host
//
// The network: a "switch" namespace holds the bridge; every host namespace has one veth (eth0) into it. The
// bridge exists only inside the namespaces, so labs of tests running in parallel cannot see each other (and can
// all use the same addresses); only the namespace names are unique (kvlab-<pid>-<n>-<host>).
//
// The disk: every process of a host runs in a mount namespace of its own where the host's directory (`disk`,
// a temp dir here) is bind-mounted at `labDisk` (/srv/kv), so a daemon's data dir and snapshot paths are the same
// on every host, as on real machines, and sshd's rsync on a host sees that host's disk.
//
// Cuts: tc on each side's eth0 drops the packets to the other side's addresses at egress (u32 filters sending
// them to an htb class whose queue holds nothing), so neither end hears anything: no RST, no ICMP, as when a
// switch port dies.
//
// A power loss kills sshd too: start it again after powerOn if the test needs it. Everything is removed at
// teardown, a failing test's too: processes (SIGKILL), namespaces (with their veths), dirs; namespaces left by a
// test process that was killed are removed by the next lab.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  finished, kvScript, runProcess, startCoordinator, startDaemon, tempDir, waitFor,
  type CoordinatorHandle, type DaemonHandle, type KvProcess, type KvSpawner, type TestLike,
} from './cluster.js';
import type { ClusterConfig } from '../../shared/config.js';

/** Where each host's disk is, for the processes of that host. */
export const labDisk = '/srv/kv';
/** The coordinator's and the first daemon's ports: every host has its own addresses, so they never collide. */
export const labCoordinatorPort = 1982;
export const labDaemonPort = 2012;
const sshd = '/usr/sbin/sshd';

export type Family = 'ipv4' | 'ipv6';

/** Runs a command to its end; rejects with its stderr if it fails. */
function run(argv: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) =>
      error ? reject(new Error(`${argv.join(' ')}: ${stderr.trim() || error.message}`)) : resolve(stdout)),
  );
}

let probed: Promise<string | undefined> | undefined;

/** What a lab needs, tried in the namespace `ns`: a disk bind-mounted in a mount namespace, a veth, tc's cuts. */
async function probe(ns: string): Promise<string | undefined> {
  try {
    mkdirSync(labDisk, { recursive: true });
    await run(['ip', 'netns', 'exec', ns, 'unshare', '-m', 'sh', '-c', `mount --bind /tmp ${labDisk}`]);
  } catch (error) {
    return `cannot bind-mount a disk at ${labDisk} in a mount namespace: ${(error as Error).message}`;
  }
  try {
    const tc = (...args: string[]) => run(['ip', 'netns', 'exec', ns, 'tc', ...args]);
    await run(['ip', '-n', ns, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1']);
    await tc('qdisc', 'add', 'dev', 'probe0', 'root', 'handle', '1:', 'htb', 'default', '1');
    await tc('class', 'add', 'dev', 'probe0', 'parent', '1:', 'classid', '1:2', 'htb', 'rate', '10gbit', 'quantum', '60000');
    await tc('qdisc', 'add', 'dev', 'probe0', 'parent', '1:2', 'handle', '20:', 'pfifo', 'limit', '0');
    await tc('filter', 'add', 'dev', 'probe0', 'parent', '1:', 'protocol', 'ip', 'u32', 'match', 'ip', 'dst', '10.13.0.1/32', 'flowid', '1:2');
  } catch (error) {
    return `cannot make a veth with the tc filters cuts need (htb, pfifo, u32): ${(error as Error).message}`;
  }
  return undefined;
}

/** Why this machine cannot make a lab (not root, no `ip netns`, no mount namespaces), or undefined if it can. */
export function labUnavailable(): Promise<string | undefined> {
  probed ??= (async () => {
    if (process.getuid?.() !== 0) return 'they need root (network namespaces, veth, tc, mount namespaces)';
    if (!existsSync(sshd)) return `${sshd} is missing (apt-get install -y openssh-server)`;
    const ns = `kvlab-${process.pid}-probe`;
    try {
      await run(['ip', 'netns', 'add', ns]);
    } catch (error) {
      return `ip netns add failed: ${(error as Error).message}`;
    }
    try {
      return await probe(ns);
    } finally {
      await run(['ip', 'netns', 'del', ns]).catch(() => {});
    }
  })();
  return probed;
}

/** Namespaces left by labs whose process is gone (killed before its teardown ran). */
async function removeStale(): Promise<void> {
  const list = await run(['ip', 'netns', 'list']).catch(() => '');
  for (const name of list.split('\n').map((line) => line.split(' ')[0] ?? '')) {
    const pid = /^kvlab-(\d+)-/.exec(name)?.[1];
    if (pid && !existsSync(`/proc/${pid}`)) await run(['ip', 'netns', 'del', name]).catch(() => {});
  }
}

let labs = 0;

export class LabHost {
  /** Every process started on this host, so a power loss can be waited out. */
  readonly processes: KvProcess[] = [];

  constructor(
    readonly lab: Lab,
    readonly name: string,
    /** The network namespace. */
    readonly ns: string,
    readonly index: number,
    /** This host's disk as the test process sees it; its processes see it at labDisk. */
    readonly disk: string,
  ) {}

  get v4(): string {
    return `10.13.0.${this.index}`;
  }

  get v6(): string {
    return `fd00:13::${this.index}`;
  }

  /** This host's address in `family` (the lab's default if absent), bracketed for IPv6. */
  host(family: Family = this.lab.family): string {
    return family === 'ipv4' ? this.v4 : this.v6;
  }

  address(port: number, family: Family = this.lab.family): string {
    return family === 'ipv4' ? `${this.v4}:${port}` : `[${this.v6}]:${port}`;
  }

  /** A command on this host: in its network namespace, with its disk at labDisk. Killed at the test's end. */
  spawn(t: TestLike, argv: string[], env: NodeJS.ProcessEnv = {}): KvProcess {
    // sh mounts, then execs: the pid the test holds is the command's, so signals reach it.
    const proc = runProcess(t, [
      'ip', 'netns', 'exec', this.ns, 'unshare', '-m', '--propagation', 'private',
      'sh', '-c', `mount --bind "$0" ${labDisk} && exec "$@"`, this.disk, ...argv,
    ], env);
    this.processes.push(proc);
    return proc;
  }

  /** kv on this host. */
  spawnKv(t: TestLike, args: string[], env: NodeJS.ProcessEnv = {}): KvProcess {
    return this.spawn(t, [process.execPath, kvScript, ...args], env);
  }

  spawner(t: TestLike): KvSpawner {
    return (args, env) => this.spawnKv(t, args, env);
  }

  /** A short kv command on this host, to its end. */
  kv(t: TestLike, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000) {
    return finished(this.spawnKv(t, args, env), args, timeoutMs);
  }

  /** The cluster config as `kv show-config --json` on this host prints it. */
  async showConfig(t: TestLike, coordinator: string): Promise<ClusterConfig> {
    const shown = await this.kv(t, ['show-config', '--json', '-c', coordinator, '--timeout-ms', '3000'], {}, 30_000);
    if (shown.code !== 0) throw new Error(`show-config exited ${shown.code}: ${shown.stderr.slice(-300)}`);
    return JSON.parse(shown.stdout) as ClusterConfig;
  }

  /** Pids of every process in this host's network namespace. */
  async pids(): Promise<number[]> {
    const out = await run(['ip', 'netns', 'pids', this.ns]).catch(() => '');
    return out.split('\n').filter(Boolean).map(Number);
  }
}

export interface LabOptions {
  /** The family of the addresses `host.address()` gives (both are configured on every host). */
  family?: Family;
}

export class Lab {
  readonly hosts = new Map<string, LabHost>();
  readonly family: Family;
  private readonly cuts = new Set<string>();
  private readonly prefix: string;
  private readonly dir: string;
  /** The key the backup (or any) host logs in to sshd with, and the sshd config dirs. */
  private key: string | undefined;

  private constructor(t: TestLike, options: LabOptions) {
    this.family = options.family ?? 'ipv4';
    this.prefix = `kvlab-${process.pid}-${++labs}`;
    this.dir = tempDir(t, 'kv-lab-');
  }

  /** A lab with these hosts; where labUnavailable() says why not, the test skips instead of calling this. */
  static async start(t: TestLike, names: string[], options: LabOptions = {}): Promise<Lab> {
    const why = await labUnavailable();
    if (why) throw new Error(`no lab on this machine: ${why}`);
    await removeStale();
    const lab = new Lab(t, options);
    // Registered before anything is made, so a setup that fails half-way is undone too.
    t.teardown(() => lab.destroy());
    const sw = `${lab.prefix}-switch`;
    await run(['ip', 'netns', 'add', sw]);
    await run(['ip', '-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await run(['ip', '-n', sw, 'link', 'set', 'br0', 'up']);
    let index = 1;
    for (const name of names) {
      const host = new LabHost(lab, name, `${lab.prefix}-${name}`, ++index, join(lab.dir, name));
      mkdirSync(host.disk);
      lab.hosts.set(name, host);
      const n = (...args: string[]) => run(['ip', '-n', host.ns, ...args]);
      await run(['ip', 'netns', 'add', host.ns]);
      await run(['ip', '-n', sw, 'link', 'add', `p${index}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns]);
      await run(['ip', '-n', sw, 'link', 'set', `p${index}`, 'master', 'br0', 'up']);
      await n('link', 'set', 'lo', 'up');
      await n('addr', 'add', `${host.v4}/24`, 'dev', 'eth0');
      // nodad: the address is usable at once (a tentative one cannot be bound; nobody else on the bridge has it).
      await n('addr', 'add', `${host.v6}/64`, 'dev', 'eth0', 'nodad');
      await n('link', 'set', 'eth0', 'up');
      // The qdisc the cuts' filters hang on: class 1:1 passes everything (the default), 1:2 drops everything (a
      // FIFO of length 0). tc's drop action (act_gact) and the prio qdisc are modules some kernels lack; htb,
      // pfifo and u32 are everywhere.
      const tc = (...args: string[]) => run(['ip', 'netns', 'exec', host.ns, 'tc', ...args]);
      await tc('qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '1');
      await tc('class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '10gbit', 'quantum', '60000');
      await tc('class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:2', 'htb', 'rate', '10gbit', 'quantum', '60000');
      await tc('qdisc', 'add', 'dev', 'eth0', 'parent', '1:2', 'handle', '20:', 'pfifo', 'limit', '0');
    }
    return lab;
  }

  host(name: string): LabHost {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no host ${name} in this lab (${[...this.hosts.keys()].join(', ')})`);
    return host;
  }

  private static pair(a: string, b: string): string {
    return [a, b].sort().join(' ');
  }

  /** Makes each host's egress filters match the cuts: a packet to a host it is cut from is dropped. */
  private async applyCuts(names: string[]): Promise<void> {
    for (const name of new Set(names)) {
      const host = this.host(name);
      const tc = (...args: string[]) => run(['ip', 'netns', 'exec', host.ns, 'tc', ...args]);
      await tc('filter', 'del', 'dev', 'eth0', 'parent', '1:').catch(() => {}); // none yet
      for (const peer of this.hosts.values()) {
        if (peer === host || !this.cuts.has(Lab.pair(host.name, peer.name))) continue;
        await tc('filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', `${peer.v4}/32`, 'flowid', '1:2');
        await tc('filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ipv6', 'prio', '2', 'u32', 'match', 'ip6', 'dst', `${peer.v6}/128`, 'flowid', '1:2');
      }
    }
  }

  /** A silent cut between two hosts: every packet between them is dropped, both ways. */
  async cut(a: string, b: string): Promise<void> {
    this.cuts.add(Lab.pair(this.host(a).name, this.host(b).name));
    await this.applyCuts([a, b]);
  }

  /** Heals the cut between a and b, or with b absent every cut of a. */
  async heal(a: string, b?: string): Promise<void> {
    const touched = new Set([a]);
    for (const peer of b === undefined ? [...this.hosts.keys()] : [b]) {
      if (this.cuts.delete(Lab.pair(a, peer))) touched.add(peer);
    }
    await this.applyCuts([...touched]);
  }

  /** Cuts a from every other host. */
  async isolate(a: string): Promise<void> {
    for (const peer of this.hosts.keys()) if (peer !== a) this.cuts.add(Lab.pair(a, peer));
    await this.applyCuts([...this.hosts.keys()]);
  }

  /**
   * The host loses power: its network goes first (so nobody hears its sockets close), then every process of it
   * is killed. Its disk stays; powerOn brings the network back, and the test starts its processes again.
   */
  async powerLoss(a: string): Promise<void> {
    const host = this.host(a);
    await this.isolate(a);
    const pids = await host.pids();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await waitFor(`every process of ${a} to be gone`, async () => (await host.pids()).length === 0, 15_000, 50);
    await Promise.all(host.processes.map((p) => p.exited));
  }

  async powerOn(a: string): Promise<void> {
    await this.heal(a);
  }

  /** The ssh command (rsync's --rsh) that logs in to any host running startSshd, from any host. */
  get rsh(): string {
    if (!this.key) throw new Error('no sshd started in this lab yet');
    return `ssh -i ${this.key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR ` +
      '-o BatchMode=yes -o ServerAliveInterval=1 -o ServerAliveCountMax=3 -o ConnectTimeout=5';
  }

  /** A key pair for logging in, made once per lab. */
  private async loginKey(): Promise<string> {
    if (!this.key) {
      const key = join(this.dir, 'login-key');
      await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'kv-lab', '-f', key]);
      writeFileSync(join(this.dir, 'authorized_keys'), readFileSync(`${key}.pub`, 'utf8'));
      this.key = key;
    }
    return this.key;
  }

  /** sshd on the host's addresses (both families, port 22), with its own host key, accepting the lab's login key. */
  async startSshd(t: TestLike, name: string): Promise<KvProcess> {
    const host = this.host(name);
    await this.loginKey();
    const dir = join(this.dir, `sshd-${name}`);
    mkdirSync(dir);
    await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host-key')]);
    const config = join(dir, 'sshd_config');
    writeFileSync(config, [
      `ListenAddress ${host.v4}`,
      `ListenAddress ${host.v6}`,
      `HostKey ${join(dir, 'host-key')}`,
      `AuthorizedKeysFile ${join(this.dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      // The key files are in a temp dir whose modes sshd's checks would refuse; there is no PAM stack to ask.
      'StrictModes no',
      'UsePAM no',
      'PidFile none',
      '',
    ].join('\n'));
    // sshd's privilege separation needs this directory (Debian's service makes it at boot).
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const proc = host.spawn(t, [sshd, '-D', '-e', '-f', config]);
    await waitFor(() => `sshd on ${name} to listen (stderr: ${proc.stderr.slice(-500)})`, () => {
      if (proc.exitCode !== undefined) throw new Error(`sshd on ${name} exited ${proc.exitCode}: ${proc.stderr.slice(-500)}`);
      return (proc.stderr.match(/Server listening on/g) ?? []).length >= 2;
    }, 15_000, 50);
    return proc;
  }

  /** Kills every process of every host, removes the namespaces (their veths go with them) and the disks. */
  private async destroy(): Promise<void> {
    for (const host of this.hosts.values()) {
      for (const pid of await host.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    for (const host of this.hosts.values()) {
      await waitFor(`every process of ${host.name} to be gone`, async () => (await host.pids()).length === 0, 15_000, 50).catch(() => {});
    }
    for (const ns of [...[...this.hosts.values()].map((h) => h.ns), `${this.prefix}-switch`]) {
      await run(['ip', 'netns', 'del', ns]).catch(() => {});
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Heartbeats for lab clusters: a daemon (or a coordinator) silent for 1.5 s counts as gone. */
export const labHeartbeats = { intervalMs: 200, timeoutMs: 1_500 };

/** kv coordinator on `host`'s address, its data on the host's disk. */
export function labCoordinator(
  t: TestLike,
  host: LabHost,
  options: { args?: string[]; family?: Family; dataDir?: string; heartbeat?: { intervalMs: number; timeoutMs: number } } = {},
): Promise<CoordinatorHandle> {
  return startCoordinator(t, {
    spawn: host.spawner(t),
    port: labCoordinatorPort,
    dataDir: options.dataDir ?? `${labDisk}/coordinator`,
    heartbeat: options.heartbeat ?? labHeartbeats,
    // The host's address, unless the test listens elsewhere (a wildcard, with --advertise).
    args: [...(options.args?.includes('--listen') ? [] : ['--listen', host.host(options.family)]), ...(options.args ?? [])],
  });
}

/** kv daemon on `host`'s address, its data on the host's disk (at labDisk/daemon unless given). */
export function labDaemon(
  t: TestLike,
  host: LabHost,
  coordinator: string,
  options: { args?: string[]; family?: Family; dataDir?: string } = {},
): Promise<DaemonHandle> {
  return startDaemon(t, coordinator, {
    spawn: host.spawner(t),
    port: labDaemonPort,
    dataDir: options.dataDir ?? `${labDisk}/daemon`,
    args: ['--listen', host.host(options.family), ...(options.args ?? [])],
  });
}

export interface LabCluster {
  lab: Lab;
  coordinator: CoordinatorHandle;
  coordinatorHost: LabHost;
  daemons: Array<DaemonHandle & { host: LabHost }>;
  /** The host clients run on. */
  client: LabHost;
  /** Waits until the coordinator reports exactly `count` servers available (asked from the client host). */
  waitForAvailable(count: number, timeoutMs?: number): Promise<ClusterConfig>;
}

/** A coordinator on one host, a daemon on each of others, asked from a client host: the lab's usual cluster. */
export async function labCluster(
  t: TestLike,
  lab: Lab,
  hosts: { coordinator: string; daemons: string[]; client: string },
  options: { family?: Family; coordinatorArgs?: string[]; daemonArgs?: string[] } = {},
): Promise<LabCluster> {
  const coordinatorHost = lab.host(hosts.coordinator);
  const client = lab.host(hosts.client);
  const coordinator = await labCoordinator(t, coordinatorHost, {
    ...(options.family ? { family: options.family } : {}),
    ...(options.coordinatorArgs ? { args: options.coordinatorArgs } : {}),
  });
  const daemons = await Promise.all(hosts.daemons.map(async (name) => {
    const host = lab.host(name);
    return { ...(await labDaemon(t, host, coordinator.address, { ...(options.family ? { family: options.family } : {}), args: options.daemonArgs ?? [] })), host };
  }));
  const cluster: LabCluster = {
    lab, coordinator, coordinatorHost, daemons, client,
    waitForAvailable: (count, timeoutMs = 30_000) =>
      waitFor(`${count} available daemons`, async () => {
        const config = await client.showConfig(t, coordinator.address);
        return config.servers.filter((s) => s.state === 'available').length === count && config;
      }, timeoutMs, 200),
  };
  await cluster.waitForAvailable(daemons.length);
  return cluster;
}

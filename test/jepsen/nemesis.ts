// Nemeses: faults injected into the real processes of a running cluster while the workload runs. Each one runs
// fault/heal cycles until its deadline and always leaves the cluster healed (every process running and resumed,
// every chain full again), so the final reads see what the cluster really kept. Every wait is a polled condition
// with a deadline; the only sleeps are the faults' own durations.
import net from 'node:net';
import { join } from 'node:path';
import type { ClusterConfig } from '../../shared/config.js';
import type { Client } from '../../shared/client.js';
import type { EtcdCluster } from '../helpers/etcd.js';
import { askLeader, launchCoordinator, type ReplicatedCoordinator } from '../helpers/replicated.js';
import {
  processStartMs, startCoordinator, startDaemon, tempDir, waitFor,
  type CoordinatorHandle, type DaemonHandle, type TestLike,
} from '../helpers/cluster.js';

export interface JepsenDaemon extends DaemonHandle {
  /** The coordinator address it was started with: the real one, or the cut-able proxy in front of it. */
  coordinator: string;
}

/** A running cluster as the nemeses see it; they replace the handles of the processes they restart. */
export interface JepsenCluster {
  t: TestLike;
  space: string;
  tolerate: number;
  heartbeat: { intervalMs: number; timeoutMs: number };
  coordinator: CoordinatorHandle;
  /** The daemons meant to be members now (a daemon that left gracefully is removed). */
  daemons: JepsenDaemon[];
  /** Only with a nemesis that needs it: the proxy `daemons[proxied]` reaches the coordinator through. */
  proxy?: CoordinatorProxy;
  proxied?: number;
  /** Only with a nemesis that needs it: the proxy every other daemon and client reaches `daemons[0]` through. */
  peerProxy?: CoordinatorProxy;
  /** Only with a nemesis that needs etcd: the replicated coordinators (`coordinator.address` is their list). */
  replicated?: {
    etcd: EtcdCluster;
    coordinators: ReplicatedCoordinator[];
    /** The arguments coordinator i is started with. */
    argsOf(i: number, port: number): string[];
    ttlSeconds: number;
  };
  /** An admin client that does not subscribe: it asks the coordinator for the config each time. */
  probe: Client;
  /** The run's timeline, for the report. */
  event(what: string): void;
}

export interface NemesisReport {
  name: string;
  /** Fault/heal cycles completed. */
  cycles: number;
  /** The fault was seen to have its intended effect at least once (what that is depends on the nemesis). */
  effective: boolean;
  notes: string[];
}

export interface Nemesis {
  name: string;
  /** What it does, for `--help` and the report. */
  doc: string;
  /** Daemons the cluster starts with. */
  daemons: number;
  /** Start `daemons[0]` behind a CoordinatorProxy. */
  needsProxy?: boolean;
  /** Start `daemons[0]` with a CoordinatorProxy in front of its own port (`peerProxy`). */
  needsPeerProxy?: boolean;
  /** Run the cluster on 3 coordinators on etcd (`replicated`). */
  needsEtcd?: boolean;
  /** Runs fault/heal cycles until `until` (a wall-clock ms), returns healed. */
  run(cluster: JepsenCluster, until: number, random: () => number): Promise<NemesisReport>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Generous bounds: a 2-core machine running nine clients, three daemons and a checker is slow at times. */
const healMs = 45_000;
/** At least one whole start (which may itself take processStartMs): a start still under way is not retried. */
const restartMs = processStartMs + 10_000;

export const config = (cluster: JepsenCluster): Promise<ClusterConfig> => cluster.probe.showConfig();

const inAnyChain = (c: ClusterConfig, serverId: string, space: string) =>
  c.spaces.find((s) => s.name === space)?.partitions.some((p) => p.chain.includes(serverId) || p.joining?.server === serverId) ?? false;

const stateOf = (c: ClusterConfig, serverId: string) => c.servers.find((s) => s.id === serverId)?.state;

/** Every current daemon available, every chain full (tolerate + 1 members, none joining) and made of them only. */
export function isHealthy(cluster: JepsenCluster, c: ClusterConfig): boolean {
  const ids = new Set(cluster.daemons.map((d) => d.serverId));
  if (![...ids].every((id) => stateOf(c, id) === 'available')) return false;
  const space = c.spaces.find((s) => s.name === cluster.space);
  if (!space) return false;
  return space.partitions.every(
    (p) => p.chain.length === cluster.tolerate + 1 && !p.joining && p.chain.every((id) => ids.has(id)),
  );
}

export async function waitHealthy(cluster: JepsenCluster, timeoutMs = healMs): Promise<ClusterConfig> {
  const healthy = await waitFor('the cluster to heal (every daemon available, every chain full)', async () => {
    const c = await config(cluster);
    return isHealthy(cluster, c) ? c : undefined;
  }, timeoutMs);
  cluster.event(`healthy at config ${healthy.version}`);
  return healthy;
}

/** Waits until the coordinator has taken `serverId` out of service: not available, and in no chain. */
async function waitDropped(cluster: JepsenCluster, d: JepsenDaemon, timeoutMs: number): Promise<ClusterConfig> {
  const dropped = await waitFor(`the coordinator to drop ${d.serverId} from every chain`, async () => {
    const c = await config(cluster);
    return stateOf(c, d.serverId) !== 'available' && !inAnyChain(c, d.serverId, cluster.space) ? c : undefined;
  }, timeoutMs);
  cluster.event(`coordinator dropped ${d.serverId} (config ${dropped.version})`);
  return dropped;
}

/** Waits for a process to exit after `signal`; SIGKILLs it if it does not in time. */
async function stopWithin(d: { proc: DaemonHandle['proc'] }, signal: NodeJS.Signals, timeoutMs: number): Promise<number | null> {
  const exited = d.proc.stop(signal);
  const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), timeoutMs).unref());
  const first = await Promise.race([exited, timer]);
  if (first !== 'late') return first;
  d.proc.child.kill('SIGKILL');
  return exited;
}

/** Starts a daemon again on its data dir, on its old port if that can be bound again, else on any. */
export async function restartDaemon(cluster: JepsenCluster, old: JepsenDaemon): Promise<JepsenDaemon> {
  let started: DaemonHandle;
  try {
    started = await startDaemon(cluster.t, old.coordinator, { dataDir: old.dataDir, port: old.port });
  } catch (error) {
    cluster.event(`restart of ${old.serverId} on port ${old.port} failed (${(error as Error).message.slice(0, 120)}); any port`);
    started = await startDaemon(cluster.t, old.coordinator, { dataDir: old.dataDir });
  }
  const back: JepsenDaemon = { ...started, coordinator: old.coordinator };
  const i = cluster.daemons.findIndex((d) => d.serverId === old.serverId);
  if (i >= 0) cluster.daemons[i] = back;
  else cluster.daemons.push(back);
  cluster.event(`daemon ${back.serverId} restarted at ${back.address}`);
  return back;
}

/**
 * SIGKILLs the coordinator and starts it again on its data dir and its port: daemons and clients know only that
 * address. The port is free again as soon as the process is gone (the listening socket does not linger, and the
 * coordinator's server sets SO_REUSEADDR, so connections in TIME_WAIT do not block it); a failed bind is
 * retried until the deadline anyway.
 */
export async function restartCoordinator(cluster: JepsenCluster, downMs: number): Promise<CoordinatorHandle> {
  const old = cluster.coordinator;
  await stopWithin(old, 'SIGKILL', 5_000);
  cluster.event('coordinator killed');
  if (downMs > 0) await sleep(downMs);
  let attempt = 0;
  const back = await waitFor(`the coordinator to restart on port ${old.port}`, () => {
    attempt++;
    return startCoordinator(cluster.t, { dataDir: old.dataDir, port: old.port, heartbeat: cluster.heartbeat });
  }, restartMs, 100);
  cluster.coordinator = back;
  cluster.event(`coordinator restarted on port ${back.port} (attempt ${attempt})`);
  return back;
}

const pick = <T>(items: readonly T[], random: () => number): T => items[Math.floor(random() * items.length)]!;

/** A daemon that is the tail of at least one partition in `c`, preferring ones that are tails of many. */
function aTail(cluster: JepsenCluster, c: ClusterConfig, random: () => number): JepsenDaemon {
  const space = c.spaces.find((s) => s.name === cluster.space);
  const tails = new Set(space?.partitions.map((p) => p.chain[p.chain.length - 1]).filter((id) => id !== undefined));
  const candidates = cluster.daemons.filter((d) => tails.has(d.serverId));
  return pick(candidates.length > 0 ? candidates : cluster.daemons, random);
}

/** Between cycles: the workload runs on a healed cluster for a moment, so faults do not all overlap. */
const calmMs = 300;

/**
 * A loop of cycles; each cycle must leave the cluster healed. `until` is when the cluster should be healed for
 * good (the workload goes on a little longer): after the first cycle, another starts only if one as long as the
 * longest so far would end by then, so that faults fall within the workload rather than after it.
 */
async function cycles(
  name: string,
  until: number,
  cycle: (n: number, notes: string[]) => Promise<boolean>,
): Promise<NemesisReport> {
  const report: NemesisReport = { name, cycles: 0, effective: false, notes: [] };
  let longestMs = 0;
  do {
    const started = Date.now();
    if (await cycle(report.cycles, report.notes)) report.effective = true;
    report.cycles++;
    longestMs = Math.max(longestMs, Date.now() - started);
    if (Date.now() + calmMs + longestMs > until) break;
    await sleep(calmMs);
  } while (Date.now() + longestMs <= until);
  return report;
}

export const joinLeave: Nemesis = {
  name: 'join-leave',
  doc: 'a fourth daemon joins (partitions move to it by state transfer), then leaves gracefully (SIGTERM); repeated',
  daemons: 3,
  async run(cluster, until) {
    let dataDir: string | undefined;
    return cycles(this.name, until, async (n, notes) => {
      // The same data dir each time after the first: it comes back with what it held when it left.
      dataDir ??= join(tempDir(cluster.t, 'kv-jepsen-joiner-'), 'daemon');
      const started = await startDaemon(cluster.t, cluster.coordinator.address, { dataDir });
      const joiner: JepsenDaemon = { ...started, coordinator: cluster.coordinator.address };
      cluster.daemons.push(joiner);
      cluster.event(`daemon ${joiner.serverId} joins (cycle ${n})`);
      const joined = await waitFor('the joiner to hold a place in a chain, transfers done', async () => {
        const c = await config(cluster);
        const space = c.spaces.find((s) => s.name === cluster.space);
        return space?.partitions.some((p) => p.chain.includes(joiner.serverId)) && space.partitions.every((p) => !p.joining)
          ? c : undefined;
      }, healMs);
      const held = joined.spaces.find((s) => s.name === cluster.space)!.partitions.filter((p) => p.chain.includes(joiner.serverId)).length;
      cluster.event(`daemon ${joiner.serverId} holds ${held} replicas (config ${joined.version})`);
      notes.push(`cycle ${n}: the joiner held ${held} replicas`);
      await sleep(500);
      const code = await stopWithin(joiner, 'SIGTERM', 15_000);
      cluster.daemons = cluster.daemons.filter((d) => d !== joiner);
      cluster.event(`daemon ${joiner.serverId} left (exit ${code})`);
      await waitFor('the coordinator to record the leave', async () => stateOf(await config(cluster), joiner.serverId) === 'shutdown', healMs);
      await waitHealthy(cluster);
      return held > 0;
    });
  },
};

export const kill: Nemesis = {
  name: 'kill',
  doc: 'SIGKILL a daemon, restart it on the same data dir (and port if it can be bound again)',
  daemons: 3,
  async run(cluster, until, random) {
    return cycles(this.name, until, async (n, notes) => {
      const victim = pick(cluster.daemons, random);
      await stopWithin(victim, 'SIGKILL', 5_000);
      cluster.event(`daemon ${victim.serverId} killed (cycle ${n})`);
      await waitDropped(cluster, victim, healMs);
      await sleep(random() * 1_000);
      const back = await restartDaemon(cluster, victim);
      notes.push(`cycle ${n}: killed ${victim.serverId}, back on ${back.port === victim.port ? 'the same' : 'a new'} port`);
      await waitHealthy(cluster);
      return true;
    });
  },
};

/** SIGSTOP, hold, SIGCONT; always resumes, whatever happens meanwhile. */
async function paused<T>(cluster: JepsenCluster, d: JepsenDaemon, hold: () => Promise<T>): Promise<T> {
  d.proc.child.kill('SIGSTOP');
  cluster.event(`daemon ${d.serverId} paused`);
  try {
    return await hold();
  } finally {
    d.proc.child.kill('SIGCONT');
    cluster.event(`daemon ${d.serverId} resumed`);
  }
}

export const pauseShort: Nemesis = {
  name: 'pause-short',
  doc: 'SIGSTOP a daemon for a third of the heartbeat timeout (the coordinator should not notice), then SIGCONT',
  daemons: 3,
  async run(cluster, until, random) {
    let noticed = 0;
    const report = await cycles(this.name, until, async (n) => {
      const victim = pick(cluster.daemons, random);
      const before = await config(cluster);
      await paused(cluster, victim, () => sleep(cluster.heartbeat.timeoutMs / 3));
      const after = await config(cluster);
      if (after.version !== before.version) noticed++;
      await waitHealthy(cluster);
      return true;
    });
    report.notes.push(`${noticed} of ${report.cycles} pauses changed the config meanwhile`);
    return report;
  },
};

export const pauseLong: Nemesis = {
  name: 'pause-long',
  doc: 'SIGSTOP a daemon until the coordinator drops it from its chains (past the heartbeat timeout), then SIGCONT',
  daemons: 3,
  async run(cluster, until, random) {
    return cycles(this.name, until, async (n, notes) => {
      const victim = pick(cluster.daemons, random);
      await paused(cluster, victim, async () => {
        await waitDropped(cluster, victim, cluster.heartbeat.timeoutMs * 4 + 5_000);
        // Resumed a while after the drop: the rest of the cluster has moved on by then.
        await sleep(500 + random() * 500);
      });
      notes.push(`cycle ${n}: ${victim.serverId} was dropped while paused`);
      await waitHealthy(cluster);
      return true;
    });
  },
};

export const coordinatorRestart: Nemesis = {
  name: 'coordinator-restart',
  doc: 'SIGKILL the coordinator, restart it on the same data dir and port',
  daemons: 3,
  async run(cluster, until, random) {
    return cycles(this.name, until, async (n, notes) => {
      const port = cluster.coordinator.port;
      const back = await restartCoordinator(cluster, random() * 1_000);
      notes.push(`cycle ${n}: restarted on ${back.port === port ? 'the same' : 'ANOTHER'} port`);
      await waitHealthy(cluster);
      return back.port === port;
    });
  },
};

export const pauseTailAfterRestart: Nemesis = {
  name: 'pause-tail-after-restart',
  doc: 'restart the coordinator; as soon as it is back, SIGSTOP a tail until the coordinator drops it, then SIGCONT',
  daemons: 3,
  async run(cluster, until, random) {
    return cycles(this.name, until, async (n, notes) => {
      // The tail as of the config the restarted coordinator loaded: it keeps the chains while daemons re-register.
      const chains = await config(cluster);
      await restartCoordinator(cluster, 0);
      const loaded = await config(cluster);
      const victim = aTail(cluster, loaded.version >= chains.version ? loaded : chains, random);
      await paused(cluster, victim, async () => {
        await waitDropped(cluster, victim, cluster.heartbeat.timeoutMs * 4 + 10_000);
        await sleep(500 + random() * 500);
      });
      notes.push(`cycle ${n}: tail ${victim.serverId} was dropped while paused, after a coordinator restart`);
      await waitHealthy(cluster);
      return true;
    });
  },
};

/**
 * One cycle of a cut made by `proxy` around `victim`: cut, wait until the coordinator has dropped the victim from
 * its chains (noting how long that took), heal a moment later, and wait for the cluster to be whole again.
 */
async function proxiedCut(
  cluster: JepsenCluster, proxy: CoordinatorProxy, victim: JepsenDaemon, random: () => number,
  words: { cut: string; healed: string },
): Promise<{ droppedMs: number }> {
  const cutAt = performance.now();
  proxy.cut();
  cluster.event(`daemon ${victim.serverId} ${words.cut}`);
  let droppedMs: number;
  try {
    await waitDropped(cluster, victim, cluster.heartbeat.timeoutMs * 4 + 5_000);
    droppedMs = Math.round(performance.now() - cutAt);
    await sleep(500 + random() * 1_000);
  } finally {
    proxy.heal();
    cluster.event(`daemon ${victim.serverId} ${words.healed}`);
  }
  await waitHealthy(cluster);
  return { droppedMs };
}

export const coordinatorCut: Nemesis = {
  name: 'coordinator-cut',
  doc: 'silently cut one daemon off from the coordinator (its clients and peers still reach it) past the heartbeat timeout, then heal',
  daemons: 3,
  needsProxy: true,
  async run(cluster, until, random) {
    const proxy = cluster.proxy;
    if (!proxy || cluster.proxied === undefined) throw new Error('coordinator-cut needs a daemon behind the proxy');
    return cycles(this.name, until, async (n, notes) => {
      const victim = cluster.daemons[cluster.proxied!]!;
      const { droppedMs } = await proxiedCut(cluster, proxy, victim, random, {
        cut: `cut off from the coordinator (cycle ${n})`, healed: 'reconnected to the coordinator'
      });
      notes.push(`cycle ${n}: ${victim.serverId} was dropped while alive but cut off, ${droppedMs} ms after the cut`);
      return victim.proc.exitCode === undefined;
    });
  },
};

export const peerCut: Nemesis = {
  name: 'peer-cut',
  doc: 'silently cut one daemon off from the other daemons and the clients (it still reaches the coordinator) until the coordinator takes it out of its chains on the others\' reports, then heal',
  daemons: 3,
  needsPeerProxy: true,
  async run(cluster, until, random) {
    const proxy = cluster.peerProxy;
    if (!proxy) throw new Error('peer-cut needs a daemon behind the peer proxy');
    return cycles(this.name, until, async (n, notes) => {
      const victim = cluster.daemons[0]!;
      const { droppedMs } = await proxiedCut(cluster, proxy, victim, random, {
        cut: `cut off from its peers and clients (cycle ${n})`, healed: 'reached by its peers again'
      });
      notes.push(`cycle ${n}: ${victim.serverId} taken out of its chains ${droppedMs} ms after the cut`);
      return victim.proc.exitCode === undefined;
    });
  },
};

/** The index of the one coordinator that leads now (bounded wait). */
async function leaderOf(cluster: JepsenCluster): Promise<number> {
  const { coordinators } = cluster.replicated!;
  let leading: number[] = [];
  await waitFor(() => `one coordinator to lead (now: ${leading.join(',') || 'none'})`, async () => {
    const answers = await Promise.all(coordinators.map((c) => (c.proc.exitCode === undefined ? askLeader(c.address) : undefined)));
    leading = answers.flatMap((a, i) => (a?.leading ? [i] : []));
    return leading.length === 1;
  }, restartMs, 50);
  return leading[0]!;
}

/** A fault on the leading coordinator, then the cluster healed: a leader again, the old one running as a follower. */
function leaderFault(name: string, doc: string, fault: (cluster: JepsenCluster, victim: ReplicatedCoordinator, random: () => number) => Promise<void>): Nemesis {
  return {
    name,
    doc,
    daemons: 3,
    needsEtcd: true,
    async run(cluster, until, random) {
      return cycles(name, until, async (n, notes) => {
        const r = cluster.replicated!;
        const i = await leaderOf(cluster);
        const victim = r.coordinators[i]!;
        const faultAt = Date.now();
        await fault(cluster, victim, random);
        const next = await leaderOf(cluster);
        notes.push(`cycle ${n}: leader ${i} → ${next} in ${Date.now() - faultAt} ms`);
        if (victim.proc.exitCode !== undefined) {
          r.coordinators[i] = await launchCoordinator(cluster.t, r.argsOf(i, victim.port));
          cluster.event(`coordinator ${i} started again`);
        }
        await waitHealthy(cluster);
        return next !== i;
      });
    },
  };
}

export const leaderKill = leaderFault('leader-kill', '3 coordinators on etcd: SIGKILL the leader, start it again once another leads', async (cluster, victim) => {
  await stopWithin(victim, 'SIGKILL', 5_000);
  cluster.event('leader killed');
});

export const leaderPause = leaderFault('leader-pause', '3 coordinators on etcd: SIGSTOP the leader for longer than its lease TTL, then SIGCONT (it must step down)', async (cluster, victim, random) => {
  victim.proc.child.kill('SIGSTOP');
  cluster.event('leader paused');
  await sleep(cluster.replicated!.ttlSeconds * 1000 + 500 + random() * 1_000);
  victim.proc.child.kill('SIGCONT');
  cluster.event('leader resumed');
});

export const nemeses: Nemesis[] = [joinLeave, kill, pauseShort, pauseLong, coordinatorRestart, pauseTailAfterRestart, coordinatorCut, peerCut, leaderKill, leaderPause];

/** No faults: the baseline every other run is compared with. */
export const none: Nemesis = {
  name: 'none',
  doc: 'no faults',
  daemons: 3,
  async run() {
    return { name: 'none', cycles: 0, effective: true, notes: [] };
  },
};

export function nemesisNamed(name: string): Nemesis {
  const found = [none, ...nemeses].find((n) => n.name === name);
  if (!found) throw new Error(`no nemesis "${name}"; there are: ${[none, ...nemeses].map((n) => n.name).join(', ')}`);
  return found;
}

/**
 * A TCP proxy in front of the coordinator that can cut the link silently, the way a network partition does: no
 * FIN, no RST, just no bytes. It stops reading both sockets of every proxied connection (socket.pause()), so
 * what either side sends waits in the proxy's and the kernel's buffers, and a peer's FIN or close is held back
 * too; on heal, reading resumes and everything held flows on in order, then any close that arrived meanwhile
 * is passed on. That is a partition healed before TCP gave up on the connection: the streams stay intact (no
 * byte lost or reordered, so the WebSocket framing survives), and the side that timed the other out (the
 * coordinator, by its heartbeats) has closed its end, which the daemon learns only once the partition heals.
 * Discarding the bytes instead would corrupt the streams, which no real network does to a TCP connection.
 * New connections while cut are accepted but not forwarded until the heal (a real partition would not even
 * let the SYN through, but the daemon, which does not notice the cut, does not try to reconnect meanwhile).
 */
export class CoordinatorProxy {
  private readonly pairs = new Set<ProxyPair>();
  /** Connections left silent by restartBehind, closed with the proxy. */
  private readonly abandoned: ProxyPair[] = [];
  private isCut = false;
  address = '';

  private constructor(private readonly server: net.Server, private readonly target: { host: string; port: number }) {}

  static async start(target: string): Promise<CoordinatorProxy> {
    const colon = target.lastIndexOf(':');
    const server = net.createServer();
    const proxy = new CoordinatorProxy(server, { host: target.slice(0, colon), port: Number(target.slice(colon + 1)) });
    server.on('connection', (socket) => proxy.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as net.AddressInfo;
    proxy.address = `127.0.0.1:${port}`;
    return proxy;
  }

  get cutOff(): boolean {
    return this.isCut;
  }

  cut(): void {
    this.isCut = true;
    for (const pair of this.pairs) pair.hold();
  }

  heal(): void {
    this.isCut = false;
    for (const pair of this.pairs) pair.release();
  }

  /**
   * The coordinator's host lost power and came back: every connection of before is dead without a FIN (its
   * clients' sockets stay open and silent for good), the coordinator has lost its end, and new connections work.
   */
  restartBehind(): void {
    for (const pair of this.pairs) {
      pair.abandon();
      this.abandoned.push(pair);
    }
    this.pairs.clear();
    this.isCut = false;
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) pair.destroy();
    for (const pair of this.abandoned) pair.destroyAbandoned();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const pair = new ProxyPair(socket, this.target, () => this.pairs.delete(pair));
    this.pairs.add(pair);
    if (this.isCut) pair.hold();
    pair.connect();
  }
}

class ProxyPair {
  private upstream: net.Socket | undefined;
  private held = false;
  /** A side that closed while the link was cut: its close is passed on at the heal. */
  private closedWhileHeld = false;
  private done = false;

  constructor(
    private readonly downstream: net.Socket,
    private readonly target: { host: string; port: number },
    private readonly onDone: () => void,
  ) {
    downstream.on('error', () => {});
  }

  connect(): void {
    if (this.held) return; // at the heal
    const upstream = net.connect(this.target.port, this.target.host);
    this.upstream = upstream;
    upstream.on('error', () => {});
    this.forward(this.downstream, upstream);
    this.forward(upstream, this.downstream);
  }

  private forward(from: net.Socket, to: net.Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (!this.held) from.resume();
        });
      }
    });
    from.on('close', () => {
      if (this.held) this.closedWhileHeld = true;
      else this.endBoth();
    });
  }

  hold(): void {
    this.held = true;
    this.downstream.pause();
    this.upstream?.pause();
  }

  release(): void {
    this.held = false;
    if (this.done) return;
    if (!this.upstream) {
      this.downstream.resume();
      this.connect();
      return;
    }
    // Whatever was held flows first; a close that happened meanwhile follows it.
    this.downstream.resume();
    this.upstream.resume();
    if (this.closedWhileHeld) setImmediate(() => this.endBoth());
  }

  /** Passes on a close after the bytes before it: end() flushes what was written, then sends the FIN. */
  private endBoth(): void {
    if (this.done) return;
    this.downstream.end();
    this.upstream?.end();
    setTimeout(() => this.destroy(), 1_000).unref();
  }

  /** Forwards nothing more and closes the coordinator's side; the client's side stays open and silent. */
  abandon(): void {
    this.hold();
    this.done = true;
    this.upstream?.destroy();
    this.onDone();
  }

  destroyAbandoned(): void {
    this.downstream.destroy();
  }

  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.downstream.destroy();
    this.upstream?.destroy();
    this.onDone();
  }
}

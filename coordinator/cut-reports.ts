// Cuts between daemons that both still reach the coordinator. A daemon that cannot reach a daemon it sends to
// (its successor in a chain, or the member it transfers to) says so (daemon/peer-reports.ts), renewing the report
// while the cut lasts and withdrawing it once it reaches the peer again. Every chain across the cut is stalled
// meanwhile, so the coordinator takes one daemon of each cut out of the chains, as if it had failed: the daemon is
// told to give up its read lease (it may be a tail), then marked not available, and placement carries on without
// it (placement.ts). It stays registered, refused leases (CUT_OFF), and is available again once no report names it.
//
// Who is taken out is derived from the reports alone, in the order they came:
//  - a daemon that reports two or more others is itself the likely cut-off one (its own link is down): it is taken
//    out, not they (reports about daemons that are down anyway do not count);
//  - otherwise the daemon reported is;
//  - the word of a daemon already taken out does not count (in a cut both sides report each other: one goes);
//  - nobody is taken out who holds the only live copy of a partition: that partition would be lost to clients
//    that still reach it, for a cut that only stalls the chains across it.
import { extendedChain, type ClusterConfig } from '../shared/config.js';
import { cutReportMsMax } from '../shared/limits.js';

interface Report {
  reporter: string;
  peer: string;
  /** performance.now() of the latest renewal. */
  renewedAt: number;
}

const keyOf = (reporter: string, peer: string) => `${reporter}>${peer}`;

export class CutReports {
  /** In arrival order (a Map keeps insertion order; a renewal keeps its place). */
  private readonly reports = new Map<string, Report>();

  /** Records a report; whether the set of reports changed. */
  report(reporter: string, peer: string, reachable: boolean, now: number): boolean {
    const key = keyOf(reporter, peer);
    if (reachable) return this.reports.delete(key);
    const known = this.reports.get(key);
    if (known) {
      known.renewedAt = now;
      return false;
    }
    this.reports.set(key, { reporter, peer, renewedAt: now });
    return true;
  }

  /** Drops the reports `serverId` made: its session ended, and what it saw then may be over. */
  forgetReporter(serverId: string): boolean {
    let changed = false;
    for (const [key, report] of this.reports) {
      if (report.reporter === serverId) changed = this.reports.delete(key) || changed;
    }
    return changed;
  }

  /** Drops reports not renewed for `cutReportMsMax`; whether any was. */
  expire(now: number): boolean {
    let changed = false;
    for (const [key, report] of this.reports) {
      if (now - report.renewedAt > cutReportMsMax) changed = this.reports.delete(key) || changed;
    }
    return changed;
  }

  /**
   * The daemons to take out of chains, each with why, by the rules above. `current`: those taken out now, which
   * count as available here (they are down only because of these reports), so the answer does not flip-flop.
   */
  cutOff(config: ClusterConfig, current: ReadonlySet<string>): Map<string, string> {
    const available = new Set(config.servers.filter((s) => s.state === 'available' || current.has(s.id)).map((s) => s.id));
    // A report about a daemon that is down anyway (it crashed, say) says nothing about the reporter's own link.
    const live = [...this.reports.values()].filter((r) => available.has(r.peer));
    const peersOf = new Map<string, string[]>();
    for (const { reporter, peer } of live) peersOf.set(reporter, [...(peersOf.get(reporter) ?? []), peer]);
    const out = new Map<string, string>();
    for (const { reporter, peer } of live) {
      if (out.has(reporter) || !available.has(reporter)) continue;
      const reported = peersOf.get(reporter)!;
      const accused = reported.length >= 2 ? reporter : peer;
      if (out.has(accused)) continue;
      if (!spareable(config, accused, available, out)) continue;
      out.set(accused, accused === reporter ? `it cannot reach ${reported.join(', ')}` : `${reporter} cannot reach it`);
    }
    return out;
  }

  /** For `kv status`: every live report. */
  list(): Array<{ reporter: string; peer: string }> {
    return [...this.reports.values()].map(({ reporter, peer }) => ({ reporter, peer }));
  }
}

/** Whether every partition `serverId` serves keeps another available member that is not taken out. */
function spareable(config: ClusterConfig, serverId: string, available: ReadonlySet<string>, out: ReadonlyMap<string, string>): boolean {
  return config.spaces.every((space) =>
    space.partitions.every((p) => {
      const members = extendedChain(p);
      if (!members.includes(serverId)) return true;
      return p.chain.some((id) => id !== serverId && available.has(id) && !out.has(id));
    }),
  );
}

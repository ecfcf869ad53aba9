// Who the coordinator takes out of chains on daemons' reports that they cannot reach another (coordinator/cut-reports.ts).
import t from 'tap';
import { addSpace, newCluster, registerServer, setServerState } from '../coordinator/cluster.js';
import { CutReports } from '../coordinator/cut-reports.js';
import type { ClusterConfig } from '../shared/config.js';
import { cutReportMsMax } from '../shared/limits.js';

function cluster(servers: number, tolerate = 1): { config: ClusterConfig; ids: string[] } {
  let config = newCluster('1');
  for (let i = 0; i < servers; i++) config = registerServer(config, { address: `h:${i}`, serverId: null, clusterId: null }).config;
  config = addSpace(config, 's', 6, tolerate);
  return { config, ids: config.servers.map((s) => s.id) };
}
const none = new Set<string>();

t.test('the daemon reported is taken out, with why', async (t) => {
  const { config, ids: [a, b] } = cluster(3);
  const cuts = new CutReports();
  t.ok(cuts.report(a!, b!, false, 0), 'a new report changes the set');
  t.notOk(cuts.report(a!, b!, false, 10), 'a renewal does not');
  t.same([...cuts.cutOff(config, none)], [[b, `${a} cannot reach it`]]);
});

t.test('in a cut both sides report each other: the first reported goes, the other\'s word does not count', async (t) => {
  const { config, ids: [a, b] } = cluster(3);
  const cuts = new CutReports();
  cuts.report(a!, b!, false, 0);
  cuts.report(b!, a!, false, 1);
  t.same([...cuts.cutOff(config, none).keys()], [b]);
  // Once b is down for it, the answer stays the same (it counts as available while taken out).
  const down = setServerState(config, b!, 'not_available');
  t.same([...cuts.cutOff(down, new Set([b!])).keys()], [b], 'stable once applied');
});

t.test('a daemon that reports two others is itself the one cut off', async (t) => {
  const { config, ids: [a, b, c] } = cluster(3);
  const cuts = new CutReports();
  cuts.report(a!, b!, false, 0);
  cuts.report(a!, c!, false, 1);
  const out = cuts.cutOff(config, none);
  t.same([...out.keys()], [a]);
  t.match(out.get(a!), /cannot reach/);
  const down = setServerState(config, a!, 'not_available');
  t.same([...cuts.cutOff(down, new Set([a!])).keys()], [a], 'stable once applied');
});

t.test('a report about a daemon that is down anyway does not count against its reporter', async (t) => {
  const { config, ids: [a, b, c] } = cluster(4, 2); // three replicas: b keeps a live partner wherever c was
  const cuts = new CutReports();
  cuts.report(a!, c!, false, 0); // c crashed
  cuts.report(a!, b!, false, 1);
  const down = setServerState(config, c!, 'not_available');
  t.same([...cuts.cutOff(down, none).keys()], [b], 'b is taken out, not a');
});

t.test('nobody holding the only live copy of a partition is taken out', async (t) => {
  const { config, ids: [a, b] } = cluster(2, 0);
  const cuts = new CutReports();
  cuts.report(a!, b!, false, 0);
  t.equal(cuts.cutOff(config, none).size, 0, 'tolerate 0: every partition of b is only on b');
  const { config: two, ids: [x, y] } = cluster(2, 1);
  const other = new CutReports();
  other.report(x!, y!, false, 0);
  t.same([...other.cutOff(setServerState(two, x!, 'not_available'), none).keys()], [], 'nor when its partner is down');
});

t.test('a report lapses unless renewed, is withdrawn when reachable, and goes with its reporter', async (t) => {
  const { config, ids: [a, b, c] } = cluster(3);
  const cuts = new CutReports();
  cuts.report(a!, b!, false, 0);
  t.notOk(cuts.expire(cutReportMsMax), 'not yet');
  cuts.report(a!, b!, false, cutReportMsMax);
  t.notOk(cuts.expire(cutReportMsMax * 2), 'renewed');
  t.ok(cuts.expire(cutReportMsMax * 2 + 1), 'lapsed');
  t.equal(cuts.cutOff(config, none).size, 0);
  cuts.report(a!, b!, false, 0);
  t.ok(cuts.report(a!, b!, true, 1), 'withdrawn');
  t.equal(cuts.cutOff(config, none).size, 0);
  cuts.report(c!, b!, false, 0);
  t.ok(cuts.forgetReporter(c!));
  t.same(cuts.list(), []);
});

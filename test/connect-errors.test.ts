// Why a connection failed, said so an operator can act on it: a name that does not resolve, nothing listening.
import t from 'tap';
import { kv, freePort, messageLines } from './helpers/cluster.js';

t.test('a coordinator name that does not resolve, and a port nothing listens on', async (t) => {
  // .invalid never resolves (RFC 6761); without DNS at all the lookup fails with EAI_AGAIN, also a resolution failure.
  const unresolved = await kv(t, ['show-config', '-c', 'no-such-host.invalid:1982', '--timeout-ms', '5000']);
  t.equal(unresolved.code, 3);
  t.match(messageLines(unresolved.stderr)[0] ?? '', /^kv: cannot connect to no-such-host\.invalid:1982: the name no-such-host\.invalid (does not resolve \(ENOTFOUND\)|could not be resolved now.*EAI_AGAIN)/);
  const port = await freePort();
  const refused = await kv(t, ['show-config', '-c', `127.0.0.1:${port}`, '--timeout-ms', '5000']);
  t.equal(refused.code, 3);
  t.match(messageLines(refused.stderr)[0] ?? '', new RegExp(`^kv: cannot connect to 127\\.0\\.0\\.1:${port}: nothing listens there \\(ECONNREFUSED\\)`));
});

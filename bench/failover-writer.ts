// The failover benchmark's writer, a process of its own (so that killing a coordinator or a daemon costs the
// benchmark's own loop nothing): puts at a steady rate, round robin over a few keys, each put in flight until it is
// acknowledged or its deadline passes (open loop: a put stuck on a dead daemon does not hold back the others).
// One line on stdout per outcome, the time on the clock every process of this machine shares:
//
//   ack <sentMs> <ackedMs> <key>        fail <sentMs> <failedMs> <key> <code>
//
//   node dist/bench/failover-writer.js --coordinator A,B,C --space S [--rate 100] [--keys 64]
import { parseArgs } from 'node:util';
import { Client, KvError } from '../shared/client.js';

const { values: args } = parseArgs({
  options: {
    coordinator: { type: 'string' },
    space: { type: 'string' },
    rate: { type: 'string', default: '100' },
    keys: { type: 'string', default: '64' },
  },
});
const putTimeoutMs = 60_000;
/** Puts in flight at once at most: beyond, the writer skips a tick rather than pile up without bound. */
const inFlightMax = 2_000;

const rate = Number(args.rate);
const keyCount = Number(args.keys);
if (!args.coordinator || !args.space || !(rate > 0) || !(keyCount > 0)) {
  process.stderr.write('failover-writer: --coordinator and --space are required; --rate and --keys are positive\n');
  process.exit(2);
}
const space = args.space;
const now = () => performance.timeOrigin + performance.now();
const client = await Client.connect(args.coordinator, { timeoutMs: putTimeoutMs });
let inFlight = 0;
let sent = 0;
const started = performance.now();

const tick = () => {
  // Catch up on the schedule (timers on a busy machine fire late), so the rate is kept on average.
  const due = Math.floor(((performance.now() - started) / 1000) * rate);
  for (; sent < due && inFlight < inFlightMax; sent++) {
    const key = `k${sent % keyCount}`;
    const sentAt = now().toFixed(1);
    inFlight++;
    client.put(space, key, { n: sent }).then(
      () => process.stdout.write(`ack ${sentAt} ${now().toFixed(1)} ${key}\n`),
      (error: unknown) => process.stdout.write(`fail ${sentAt} ${now().toFixed(1)} ${key} ${error instanceof KvError ? error.code : 'ERROR'}\n`),
    ).finally(() => inFlight--);
  }
};
const timer = setInterval(tick, Math.max(1, Math.floor(1000 / rate)));
process.once('SIGTERM', () => {
  clearInterval(timer);
  void client.close().finally(() => process.exit(0));
});

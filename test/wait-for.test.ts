// The tests' one wait helper: it returns the first value that holds, and a wait that cannot end fails with what it
// waited for and what the last check saw, even when the check itself never returns.
import t from 'tap';
import { GaveUp, waitFor } from './helpers/wait-for.js';

t.test('resolves with the first value other than undefined or false, checking again after a throw', async (t) => {
  let calls = 0;
  const value = await waitFor('the third call', () => {
    calls++;
    if (calls === 1) throw new Error('not yet');
    return calls === 3 ? { calls } : false;
  }, 5_000, 1);
  t.same(value, { calls: 3 });
});

t.test('a condition that never holds fails at the deadline, naming what it waited for and the last error', async (t) => {
  let state = 'starting';
  await t.rejects(waitFor(() => `the server to be up (state ${state})`, () => {
    state = 'still starting';
    throw new Error('ECONNREFUSED');
  }, 50), { message: /^timed out after 50 ms waiting for the server to be up \(state still starting\): the last check threw Error: ECONNREFUSED$/ });

  let calls = 0;
  await t.rejects(waitFor('a flag', async () => {
    if (++calls === 1) throw new Error('first');
    return false;
  }, 50), { message: /waiting for a flag \(the condition was false at the last check; an earlier one threw Error: first\)$/ });
});

t.test('a check that never returns fails at the deadline instead of hanging', async (t) => {
  await t.rejects(waitFor('a reply', () => new Promise<never>(() => {}), 50), {
    message: 'timed out after 50 ms waiting for a reply: the last check did not finish',
  });
});

t.test('a probe that throws GaveUp ends the wait at once', async (t) => {
  let calls = 0;
  await t.rejects(waitFor('a log line', () => {
    calls++;
    throw new GaveUp('the process exited with 1');
  }, 60_000), { message: 'gave up waiting for a log line: the process exited with 1' });
  t.equal(calls, 1, 'checked once, not until the deadline');
});

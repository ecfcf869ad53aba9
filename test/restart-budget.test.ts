// kv up's restart budget: a doubling wait, and no restart once a process died too often within the window.
import t from 'tap';
import { RestartBudget } from '../cli/restart-budget.js';

t.test('waits double, up to the cap, until the budget is spent; old restarts fall out of the window', async (t) => {
  let now = 0;
  const budget = new RestartBudget({ restartsMax: 4, windowMs: 60_000, firstDelayMs: 500, delayMsMax: 2_000, now: () => now });
  t.same([budget.next(), budget.next(), budget.next(), budget.next()], [500, 1_000, 2_000, 2_000]);
  t.equal(budget.next(), undefined, 'a fifth death within the window: given up');
  now = 60_001;
  t.equal(budget.next(), 500, 'a minute later the window is empty again, and the waits start short');
});

t.test('a budget of none gives up at the first death', async (t) => {
  t.equal(new RestartBudget({ restartsMax: 0, windowMs: 60_000, firstDelayMs: 500, delayMsMax: 2_000 }).next(), undefined);
});

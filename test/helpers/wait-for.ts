// The one way a test waits for something to happen in another process or a later turn: a condition polled
// against a deadline. A wait that cannot end fails with what it waited for and what the last check saw, instead
// of hanging until tap's timeout; a check that itself hangs counts against the same deadline.

/** Thrown by a probe to stop waiting at once: what it waits for can no longer happen (the process exited). */
export class GaveUp extends Error {}

/**
 * Resolves with the probe's first value other than `undefined` or `false`; a probe that throws is checked again.
 * `what` (a function to describe the state at the deadline) names the condition in the error.
 */
export async function waitFor<T>(
  what: string | (() => string),
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  const described = () => (typeof what === 'string' ? what : what());
  let lastError: unknown;
  let lastThrew = false;
  for (;;) {
    const checked = await check(probe, deadline - performance.now());
    if (checked === late) throw new Error(`timed out after ${timeoutMs} ms waiting for ${described()}: the last check did not finish`);
    if ('error' in checked) {
      if (checked.error instanceof GaveUp) throw new Error(`gave up waiting for ${described()}: ${checked.error.message}`);
      lastError = checked.error;
      lastThrew = true;
    } else if (checked.value !== undefined && checked.value !== false) {
      return checked.value;
    } else {
      lastThrew = false;
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      const last = lastThrew
        ? `: the last check threw ${String(lastError)}`
        : lastError !== undefined
          ? ` (the condition was false at the last check; an earlier one threw ${String(lastError)})`
          : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${described()}${last}`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, remaining)));
  }
}

const late = Symbol('late');

/** One run of the probe, or `late` once `ms` have passed (a hung probe is left to settle on its own). */
async function check<T>(probe: () => T | Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | typeof late> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof late>((resolve) => (timer = setTimeout(() => resolve(late), Math.max(0, ms))));
  const run = Promise.resolve()
    .then(probe)
    .then((value) => ({ value }), (error: unknown) => ({ error }));
  try {
    return await Promise.race([run, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// How often `kv up` starts a process again that died: soon at first (a daemon back within the heartbeat timeout
// keeps its place in its chains), then with a doubling wait, and not at all once it has died too often in a short
// time (a process that cannot run, such as one whose data dir is refused, would otherwise restart for ever).

export interface RestartBudgetOptions {
  /** Restarts allowed within `windowMs`; one more and the process is given up. */
  restartsMax: number;
  windowMs: number;
  firstDelayMs: number;
  delayMsMax: number;
  now?: () => number;
}

export const restartBudgetDefaults: RestartBudgetOptions = { restartsMax: 5, windowMs: 60_000, firstDelayMs: 500, delayMsMax: 8_000 };

export class RestartBudget {
  /** When the restarts within the window were granted. */
  private granted: number[] = [];

  constructor(private readonly options: RestartBudgetOptions = restartBudgetDefaults) {}

  /** The wait before restarting a process that died just now, or undefined: it died too often, give it up. */
  next(): number | undefined {
    const { restartsMax, windowMs, firstDelayMs, delayMsMax, now = () => performance.now() } = this.options;
    const at = now();
    this.granted = this.granted.filter((t) => at - t < windowMs);
    if (this.granted.length >= restartsMax) return undefined;
    this.granted.push(at);
    return Math.min(firstDelayMs * 2 ** (this.granted.length - 1), delayMsMax);
  }

  /** How it is given up, for a person. */
  describe(): string {
    return `${this.options.restartsMax} restarts within ${Math.round(this.options.windowMs / 1000)} s`;
  }
}

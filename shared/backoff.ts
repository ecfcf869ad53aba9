// Waits between reconnect attempts: exponential, capped, with full jitter, so that many processes that lost the
// same peer at the same moment (a coordinator restart) do not all knock again in lockstep. Ten lines do not earn
// a dependency; the random source is injected so tests can pin the sequence.

export class Backoff {
  private failures = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The wait before the next attempt, in ms: anywhere below min·2^failures, never above the cap (`maxMs` or less). */
  next(capMs = this.maxMs): number {
    const ceiling = Math.min(this.minMs * 2 ** Math.min(this.failures, 30), this.maxMs, capMs);
    this.failures++;
    return Math.floor(this.random() * ceiling);
  }

  /** After a success: the next failure starts over with short waits. */
  reset(): void {
    this.failures = 0;
  }
}

// Request throttling (spec/console.md §4.6): a sliding one-second window over
// received messages. When `max` messages are inside the window, the next read
// waits until the oldest leaves it. Nothing is rejected.

export interface ThrottleClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: ThrottleClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

export class Throttle {
  private readonly times: number[] = [];

  constructor(
    private readonly max: number,
    private readonly windowMs = 1000,
    private readonly clock: ThrottleClock = realClock,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`max_requests_per_sec must be at least 1, got ${max}`);
  }

  /** How long the next message has to wait (0 when the window has room). */
  delay(): number {
    const now = this.clock.now();
    while (this.times.length > 0 && now - this.times[0]! >= this.windowMs) this.times.shift();
    if (this.times.length < this.max) return 0;
    return this.times[0]! + this.windowMs - now;
  }

  /** Waits until a message may be read, then counts it. */
  async admit(): Promise<void> {
    for (let d = this.delay(); d > 0; d = this.delay()) await this.clock.sleep(d);
    this.times.push(this.clock.now());
  }
}

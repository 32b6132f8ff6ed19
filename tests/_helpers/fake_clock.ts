/**
 * A manually advanced {@linkcode Clock} for tests (not part of the public
 * `mod.ts`): rotation schedules, pruning, heartbeats and token expiry are
 * driven by `tick()`/`next()` instead of sleeps.
 * @module
 */
import type { Clock, TimerId } from "../../lib/common/mod.ts";

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A manually advanced clock for tests. Timers fire in time order during
 * {@linkcode FakeClock.tick}; async work they start gets a chance to run between
 * timers so chains of `await` settle as they would in real time.
 *
 * @example
 * ```ts
 * import { FakeClock } from "./fake_clock.ts";
 * const clock = new FakeClock(0);
 * let fired = false;
 * clock.setTimeout(() => (fired = true), 1000);
 * await clock.tick(1000);
 * console.assert(fired);
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #timers: FakeTimer[] = [];
  #nextId = 1;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#nextId++;
    this.#timers.push({ id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(id: TimerId): void {
    this.#timers = this.#timers.filter((t) => t.id !== id);
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Time of the earliest pending timer, or `undefined`. */
  get nextAt(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers) {
      if (min === undefined || t.at < min) min = t.at;
    }
    return min;
  }

  /** Advances time by `ms`, firing due timers in order and letting promises settle. */
  async tick(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const due = this.#timers
        .filter((t) => t.at <= target)
        .sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
      await settle();
    }
    this.#now = target;
    await settle();
  }

  /** Advances straight to the next timer (if any) and fires it. */
  async next(): Promise<void> {
    const at = this.nextAt;
    if (at !== undefined) await this.tick(Math.max(0, at - this.#now));
  }
}

async function settle(): Promise<void> {
  // Several macrotask turns so I/O-free promise chains (and short real I/O) finish.
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}

/**
 * Time as a dependency: production code takes a {@linkcode Clock} so tests can
 * drive schedules (rotation, pruning, heartbeats) with the fake clock in
 * `tests/_helpers/fake_clock.ts`.
 * @module
 */

/** A cancellable timer handle returned by {@linkcode Clock.setTimeout}. */
export type TimerId = unknown;

/** The time source and timer facility every scheduler takes as a dependency. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `fn` after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; unknown ids are ignored. */
  clearTimeout(id: TimerId): void;
}

/**
 * The real clock.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * console.assert(Math.abs(systemClock.now() - Date.now()) < 1000);
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) =>
    setTimeout(fn, Math.max(0, Math.min(ms, 2 ** 31 - 1))),
  clearTimeout: (id) => clearTimeout(id as number),
};

/**
 * The router's background loops, all on its injected clock: the prune cycle
 * every `prune_interval` (the next one scheduled when the last finished), the
 * request-timeout sweep and the idle-connection sweep.
 * @module
 */
import type { Clock, TimerId } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";

/** Options of {@linkcode startLoops}. */
export interface LoopOptions {
  clock: Clock;
  logger: Logger;
  /** One prune cycle (stale endpoints, probes). */
  prune: () => Promise<void>;
  pruneIntervalMs: number;
  /** Aborts requests past the request timeout. */
  sweepRequests: (now: number) => void;
  requestTimeoutMs: number;
  /** Closes idle backend connections. */
  sweepIdle: (now: number) => void;
  idleSweepIntervalMs: number;
}

/** Running loops. */
export interface Loops {
  /** Waits for a running prune cycle, then runs one more. */
  pruneNow(): Promise<void>;
  /** Cancels every timer. */
  stop(): void;
}

/** Starts the loops. */
export function startLoops(o: LoopOptions): Loops {
  const { clock } = o;
  let stopped = false;
  const timers = new Set<TimerId>();
  /** Runs `fn` every `ms` on the clock until stopped. */
  const every = (ms: number, fn: () => void) => {
    const arm = () => {
      const id = clock.setTimeout(() => {
        timers.delete(id);
        if (stopped) return;
        fn();
        arm();
      }, ms);
      timers.add(id);
    };
    arm();
  };

  let cycle: Promise<void> = Promise.resolve();
  const schedulePrune = () => {
    const id = clock.setTimeout(() => {
      timers.delete(id);
      cycle = o.prune().catch((err) =>
        o.logger.error("prune-failed", { error: describeError(err) })
      ).finally(() => {
        if (!stopped) schedulePrune();
      });
    }, o.pruneIntervalMs);
    timers.add(id);
  };
  schedulePrune();
  every(
    Math.max(50, Math.min(1000, o.requestTimeoutMs / 4)),
    () => o.sweepRequests(clock.now()),
  );
  every(o.idleSweepIntervalMs, () => o.sweepIdle(clock.now()));

  return {
    async pruneNow() {
      await cycle;
      await o.prune();
    },
    stop() {
      stopped = true;
      for (const id of timers) clock.clearTimeout(id);
      timers.clear();
    },
  };
}

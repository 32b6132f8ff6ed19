/**
 * Noticing new credentials on disk: filesystem events on the directories of
 * the watched files (and their parents, where a `current -> vN` symlink swap
 * happens), debounced, plus a periodic stat as a fallback for what events miss.
 * @module
 */
import { dirname } from "node:path";
import { describeError } from "../common/mod.ts";
import type { Clock, TimerId } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";

/** Options for {@linkcode CredentialWatcher}. */
export interface WatcherOptions {
  /** Files to watch (their directories and parents are watched). */
  files: string[];
  /** Called after a burst of events, and on every poll. */
  onCheck: (why: "event" | "poll") => void;
  pollIntervalMs: number;
  debounceMs: number;
  clock: Clock;
  logger: Logger;
  /** Use filesystem events (the poll runs regardless). @default {true} */
  events?: boolean;
}

/** Watches credential files; {@linkcode CredentialWatcher.close} stops it. */
export class CredentialWatcher {
  #o: WatcherOptions;
  #fs: Deno.FsWatcher | undefined;
  #pollTimer: TimerId | undefined;
  #debounce: TimerId | undefined;
  #closed = false;
  #loop: Promise<void> = Promise.resolve();

  constructor(options: WatcherOptions) {
    this.#o = options;
  }

  /** Starts the event watcher and the poll. */
  start(): void {
    const o = this.#o;
    if (o.events !== false) {
      const dirs = new Set<string>();
      for (const f of o.files) {
        const d = dirname(f);
        dirs.add(d);
        dirs.add(dirname(d));
      }
      const existing = [...dirs].filter((d) => {
        try {
          return Deno.statSync(d).isDirectory;
        } catch {
          return false;
        }
      });
      if (existing.length > 0) {
        try {
          this.#fs = Deno.watchFs(existing, { recursive: false });
          this.#loop = this.#consume(this.#fs);
        } catch (err) {
          o.logger.warn("watch-failed", {
            error: describeError(err),
            fallback: "poll",
          });
        }
      }
    }
    this.#schedulePoll();
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pollTimer !== undefined) {
      this.#o.clock.clearTimeout(this.#pollTimer);
    }
    if (this.#debounce !== undefined) {
      this.#o.clock.clearTimeout(this.#debounce);
    }
    try {
      this.#fs?.close();
    } catch {
      // already closed
    }
    await this.#loop;
  }

  async #consume(w: Deno.FsWatcher): Promise<void> {
    try {
      for await (const ev of w) {
        if (this.#closed) break;
        if (ev.kind === "access") continue;
        this.#kick();
      }
    } catch (err) {
      if (!this.#closed) {
        this.#o.logger.warn("watch-failed", {
          error: describeError(err),
          fallback: "poll",
        });
      }
    }
  }

  #kick(): void {
    if (this.#debounce !== undefined) return;
    this.#debounce = this.#o.clock.setTimeout(() => {
      this.#debounce = undefined;
      if (!this.#closed) this.#o.onCheck("event");
    }, this.#o.debounceMs);
  }

  #schedulePoll(): void {
    if (this.#closed || this.#o.pollIntervalMs <= 0) return;
    this.#pollTimer = this.#o.clock.setTimeout(() => {
      if (this.#closed) return;
      this.#o.onCheck("poll");
      this.#schedulePoll();
    }, this.#o.pollIntervalMs);
  }
}

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
  #targets: Array<[string, string]> = [];

  constructor(options: WatcherOptions) {
    this.#o = options;
  }

  /** Starts the event watcher and the poll. */
  start(): void {
    if (this.#o.events !== false) this.#watch();
    this.#schedulePoll();
  }

  /**
   * (Re)creates the fs watcher. inotify follows a symlinked directory to its
   * target at watch time, so after a `current -> vN` swap the watcher is
   * re-created on the new target.
   */
  #watch(): void {
    const o = this.#o;
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
    this.#targets = resolved(existing);
    const real = [...new Set(this.#targets.map(([, r]) => r).filter(Boolean))];
    if (real.length === 0) return;
    const old = this.#fs;
    this.#fs = undefined;
    try {
      old?.close();
    } catch {
      // already closed
    }
    try {
      // Resolved paths: a watch on a symlinked directory stays on its old target.
      this.#fs = Deno.watchFs(real, { recursive: false });
      const fs = this.#fs;
      const prev = this.#loop;
      this.#loop = Promise.all([prev, this.#consume(fs)]).then(() => {});
    } catch (err) {
      this.#fs = undefined;
      o.logger.warn("watch-failed", {
        error: describeError(err),
        fallback: "poll",
      });
    }
  }

  #check(why: "event" | "poll"): void {
    if (this.#closed) return;
    if (this.#o.events !== false) {
      const dirs = this.#targets.map(([d]) => d);
      const now = resolved(dirs);
      if (now.some(([, r], i) => r !== this.#targets[i]?.[1])) this.#watch();
    }
    this.#o.onCheck(why);
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
      this.#check("event");
    }, this.#o.debounceMs);
  }

  #schedulePoll(): void {
    if (this.#closed || this.#o.pollIntervalMs <= 0) return;
    this.#pollTimer = this.#o.clock.setTimeout(() => {
      if (this.#closed) return;
      this.#check("poll");
      this.#schedulePoll();
    }, this.#o.pollIntervalMs);
  }
}

function resolved(dirs: string[]): Array<[string, string]> {
  return dirs.map((d) => {
    try {
      return [d, Deno.realPathSync(d)];
    } catch {
      return [d, ""];
    }
  });
}

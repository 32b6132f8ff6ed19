/**
 * Watching credentials that expire: an absolute-expiry gauge
 * (`*_not_after_timestamp_seconds`) per credential, and one warning log line
 * (`credential-expiring`) when a credential enters its warning window. The
 * caller decides the window: a fraction of the lifetime for certificates
 * ({@linkcode certWarnAt}), a fixed duration for tokens.
 * @module
 */
import type { Logger } from "./log.ts";
import type { MetricsRegistry } from "./metrics.ts";

/**
 * The time source (lib/common's `Clock` fits). Only `now()` is used: the
 * warning timers are real-time timers that re-check `now()` when they fire,
 * so a test's fake clock keeps its own timers to itself.
 */
export interface ExpiryClock {
  now(): number;
}

/** One credential to watch. */
export interface WatchedCredential {
  /** Gauge labels (e.g. `{ instance }`); no secret. */
  labels: Record<string, string>;
  /** Expiry, ms since the epoch. */
  notAfter: number;
  /** Start of the warning window, ms since the epoch. */
  warnAt: number;
  /** Extra log fields (serial, subject, file; never the credential). */
  fields?: Record<string, unknown>;
}

/**
 * When a certificate's warning window starts: when less than `fraction` of
 * its lifetime is left.
 *
 * @example
 * ```ts
 * import { certWarnAt } from "./expiry.ts";
 * console.assert(certWarnAt(0, 100, 0.2) === 80);
 * ```
 */
export function certWarnAt(
  notBefore: number,
  notAfter: number,
  fraction: number,
): number {
  return notAfter - fraction * (notAfter - notBefore);
}

interface Entry extends WatchedCredential {
  timer?: ReturnType<typeof setTimeout>;
  warned: boolean;
}

/**
 * A set of watched credentials behind one gauge.
 *
 * @example
 * ```ts
 * import { ExpiryWatch } from "./expiry.ts";
 * import { MetricsRegistry, silentLogger } from "./mod.ts";
 * const registry = new MetricsRegistry("sigil_proxy");
 * const w = new ExpiryWatch({ registry, name: "router_token_not_after_timestamp_seconds", help: "Token expiry", credential: "router-token", logger: silentLogger });
 * w.track("r1", { labels: { router: "r1" }, notAfter: 2e12, warnAt: 1.9e12 });
 * console.assert(registry.render().includes('sigil_proxy_router_token_not_after_timestamp_seconds{router="r1"} 2000000000'));
 * w.close();
 * ```
 */
export class ExpiryWatch {
  #entries = new Map<string, Entry>();
  #o: {
    credential: string;
    logger: Logger;
    clock: ExpiryClock;
  };

  /**
   * @param options `registry` and `name`/`help` of the gauge (without the
   *   registry prefix; no gauge without `registry`, for a credential whose
   *   expiry is already a gauge); `credential`: what the log line calls it
   *   (`"router-api-cert"`); `clock` defaults to the system clock.
   */
  constructor(options: {
    registry?: MetricsRegistry;
    name?: string;
    help?: string;
    credential: string;
    logger: Logger;
    clock?: ExpiryClock;
  }) {
    this.#o = {
      credential: options.credential,
      logger: options.logger,
      clock: options.clock ?? { now: () => Date.now() },
    };
    options.registry?.gauge(
      options.name ?? "not_after_timestamp_seconds",
      options.help ?? "Expiry (Unix time)",
      () =>
        [...this.#entries.values()].map((
          e,
        ) => [e.labels, Math.floor(e.notAfter / 1000)]),
    );
  }

  /** Starts (or replaces) watching `key`; warns now when already in the window. */
  track(key: string, credential: WatchedCredential): void {
    const old = this.#entries.get(key);
    if (old?.timer !== undefined) clearTimeout(old.timer);
    // The same credential again (a re-read) keeps its warned state.
    const same = old !== undefined && old.notAfter === credential.notAfter;
    const e: Entry = { ...credential, warned: same && old.warned };
    this.#entries.set(key, e);
    this.#arm(key, e);
  }

  /** Stops watching `key` (its gauge series goes away). */
  forget(key: string): void {
    const e = this.#entries.get(key);
    if (e?.timer !== undefined) clearTimeout(e.timer);
    this.#entries.delete(key);
  }

  /** Keys whose credential is in its warning window now. */
  expiring(): string[] {
    const now = this.#o.clock.now();
    return [...this.#entries].filter(([, e]) => now >= e.warnAt).map(([k]) =>
      k
    );
  }

  /** Clears every timer. */
  close(): void {
    for (const e of this.#entries.values()) {
      if (e.timer !== undefined) clearTimeout(e.timer);
      e.timer = undefined;
    }
  }

  #arm(key: string, e: Entry): void {
    const { clock, logger, credential } = this.#o;
    e.timer = undefined;
    if (e.warned || this.#entries.get(key) !== e) return;
    const now = clock.now();
    if (now < e.warnAt) {
      // Real time, capped by the platform timer (and not the injected
      // clock's): the check on fire uses clock.now() again. At most a minute
      // apart, so a clock that jumps is noticed.
      e.timer = setTimeout(
        () => this.#arm(key, e),
        Math.max(0, Math.min(e.warnAt - now, 60_000)),
      );
      return;
    }
    e.warned = true;
    logger.warn("credential-expiring", {
      credential,
      ...e.labels,
      ...e.fields,
      not_after: new Date(e.notAfter).toISOString(),
      expires_in_s: Math.floor((e.notAfter - now) / 1000),
    });
  }
}

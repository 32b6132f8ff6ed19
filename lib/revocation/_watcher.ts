/**
 * A holder's copy of the CA's CRL (`/v1/crl.pem`): fetched at start and
 * every `refresh`, kept when a fetch fails (last good wins, with a warning and
 * a failure counter), asked on every TLS handshake by serial.
 *
 * Deno 2.9's node:tls ignores the `crl` secure-context option (measured: a
 * revoked client and a revoked server both handshake with it set), so the
 * proxy and the router check the peer's serial themselves.
 * @module
 */
import {
  describeError,
  describeFetchError,
  systemClock,
} from "../common/mod.ts";
import type { Clock, TimerId } from "../common/mod.ts";
import type { Logger, MetricsRegistry } from "../observe/mod.ts";
import { normalizeSerial, parseCrl, splitCertificates } from "../pki/mod.ts";

/** Options of {@linkcode CrlWatcher}. */
export interface CrlWatcherOptions {
  /** The CA's CRL URL, e.g. `https://ca.internal:8443/v1/crl.pem`. */
  url: string;
  /**
   * PEM bundle trusted for the CA's HTTPS certificate; a CRL whose issuer is
   * in it must carry a valid signature by it.
   */
  caBundle?: string;
  /** Time between fetches. @default {60000} */
  refreshMs?: number;
  /** Time limit of one fetch. @default {10000} */
  timeoutMs?: number;
  /** Who holds it, in log lines (`proxy`, `router`). */
  holder: string;
  logger: Logger;
  /** Registers `crl_*` metrics when given. */
  metrics?: MetricsRegistry;
  clock?: Clock;
  /** @default {globalThis.fetch} (with `caBundle` trusted) */
  fetch?: typeof fetch;
}

/** What the watcher holds, for status pages and tests. */
export interface CrlState {
  url: string;
  /** Serials listed in the CRL held (0 before the first success). */
  revoked: number;
  /** When the CRL held was fetched (ms), if ever. */
  updatedAt: number | undefined;
  /** thisUpdate of the CRL held. */
  thisUpdate: Date | undefined;
  /** The last fetch's failure, cleared by a success. */
  lastError: string | undefined;
}

/**
 * Loads and reloads a CRL.
 *
 * @example
 * ```ts ignore
 * const crl = new CrlWatcher({ url: `${caUrl}/v1/crl.pem`, caBundle, holder: "proxy", logger });
 * await crl.start();
 * crl.isRevoked(peer.serialNumber);
 * ```
 */
export class CrlWatcher {
  readonly options: CrlWatcherOptions;
  #serials = new Set<string>();
  #state: CrlState;
  #clock: Clock;
  #fetch: typeof fetch;
  #client: Deno.HttpClient | undefined;
  #timer: TimerId | undefined;
  #closed = false;
  #listeners = new Set<(serials: ReadonlySet<string>) => void>();
  #failures;
  #trusted: string[];

  constructor(options: CrlWatcherOptions) {
    this.options = options;
    this.#clock = options.clock ?? systemClock;
    this.#state = {
      url: options.url,
      revoked: 0,
      updatedAt: undefined,
      thisUpdate: undefined,
      lastError: undefined,
    };
    this.#trusted = options.caBundle ? splitCertificates(options.caBundle) : [];
    if (options.fetch) {
      this.#fetch = options.fetch;
    } else if (options.caBundle) {
      const client = this.#client = Deno.createHttpClient({
        caCerts: [options.caBundle],
      });
      this.#fetch = (input, init) => fetch(input, { ...init, client });
    } else {
      this.#fetch = (input, init) => fetch(input, init);
    }
    const m = options.metrics;
    this.#failures = m?.counter(
      "crl_fetch_failures_total",
      "CRL fetches that failed (the last good CRL stays in use)",
    );
    m?.gauge(
      "crl_revoked_serials",
      "Serials in the CRL in use",
      () => [[{}, this.#state.revoked]],
    );
    m?.gauge(
      "crl_last_success_timestamp_seconds",
      "When the CRL in use was fetched (Unix time; 0: never)",
      () => [[{}, Math.floor((this.#state.updatedAt ?? 0) / 1000)]],
    );
  }

  /**
   * Fetches once, then every `refreshMs`. Resolves after the first attempt
   * whatever its outcome (a CA that is down must not stop the holder; until
   * a CRL arrives nothing is refused as revoked).
   */
  async start(): Promise<void> {
    await this.refresh();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(async () => {
      await this.refresh();
      this.#schedule();
    }, this.options.refreshMs ?? 60_000);
  }

  /** Fetches now; true when a CRL was loaded. Never throws. */
  async refresh(): Promise<boolean> {
    const o = this.options;
    let text: string;
    try {
      const res = await this.#fetch(o.url, {
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return this.#failed(`the CA answered ${res.status}`);
      }
      text = await res.text();
    } catch (err) {
      return this.#failed(describeFetchError(err));
    }
    let crl;
    try {
      crl = await parseCrl(text, this.#trusted);
    } catch (err) {
      return this.#failed(describeError(err));
    }
    const held = this.#state.thisUpdate;
    if (held && crl.thisUpdate < held) {
      return this.#failed(
        `it is older (thisUpdate ${crl.thisUpdate.toISOString()}) than the CRL in use (${held.toISOString()})`,
      );
    }
    const changed = crl.serials.size !== this.#serials.size ||
      [...crl.serials].some((s) => !this.#serials.has(s));
    this.#serials = crl.serials;
    const recovered = this.#state.lastError !== undefined;
    this.#state = {
      url: o.url,
      revoked: crl.serials.size,
      updatedAt: this.#clock.now(),
      thisUpdate: crl.thisUpdate,
      lastError: undefined,
    };
    if (changed || recovered || held === undefined) {
      o.logger.info("crl-loaded", {
        holder: o.holder,
        url: o.url,
        revoked: crl.serials.size,
        this_update: crl.thisUpdate.toISOString(),
      });
    }
    if (changed) { for (const l of this.#listeners) l(this.#serials); }
    return true;
  }

  #failed(reason: string): false {
    this.#failures?.inc();
    this.#state = { ...this.#state, lastError: reason };
    this.options.logger.warn("crl-fetch-failed", {
      holder: this.options.holder,
      url: this.options.url,
      reason,
      keeping: this.#state.updatedAt === undefined
        ? "no CRL yet: nothing is refused as revoked"
        : `the CRL fetched at ${
          new Date(this.#state.updatedAt).toISOString()
        } (${this.#state.revoked} serials)`,
    });
    return false;
  }

  /** True when the CRL in use lists this serial (hex, any case). */
  isRevoked(serial: string | undefined): boolean {
    return serial !== undefined && this.#serials.has(normalizeSerial(serial));
  }

  /** Calls `fn` with the new serials whenever a fetched CRL changes them. */
  onChange(fn: (serials: ReadonlySet<string>) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** The state, for status pages. */
  state(): CrlState {
    return { ...this.#state };
  }

  /** Stops refreshing and releases the HTTP client. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#client?.close();
  }
}

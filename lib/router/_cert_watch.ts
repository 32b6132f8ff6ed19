/**
 * Keeping the router's own certificates fresh and watched: every
 * `cert_check_interval` the backend client pair and the API pair are re-read;
 * a changed pair is checked, then loaded (new backend connections and new API
 * handshakes use it, in-flight ones finish on the old one). Each certificate's
 * expiry is a gauge, and `credential-expiring` is logged when less than
 * `expiry_warning.cert_fraction` of its lifetime is left.
 * @module
 */
import type { Clock } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { RouterSection } from "../config/mod.ts";
import type { Logger, MetricsRegistry } from "../observe/mod.ts";
import { certWarnAt, ExpiryWatch } from "../observe/mod.ts";
import { certificateMatchesKey, parseCertificate } from "../pki/mod.ts";
import type { ReadTextFile } from "./_material.ts";
import { RouterError } from "./errors.ts";

/** A certificate/key pair as text. */
export interface PemPair {
  cert: string;
  key: string;
}

/** What {@linkcode RouterCertWatch} needs. */
export interface RouterCertWatchOptions {
  config: RouterSection;
  read: ReadTextFile;
  clock: Clock;
  logger: Logger;
  registry: MetricsRegistry;
  /** The pairs loaded at start (undefined: not configured). */
  initial: { backend?: PemPair; api?: PemPair; httpsCert?: string };
  /**
   * Loads the backend pair from its files (throws when unusable).
   * @returns The certificate PEM it loaded.
   */
  reloadBackend(): Promise<string | undefined>;
  /** Serves a new API pair. */
  swapApi?(pair: PemPair): Promise<void>;
}

/** Watches and reloads the router's own certificates. */
export class RouterCertWatch {
  #o: RouterCertWatchOptions;
  #backend?: PemPair;
  #api?: PemPair;
  #timer?: ReturnType<typeof setTimeout>;
  #running?: Promise<void>;
  #closed = false;
  #watch: Map<string, ExpiryWatch>;

  constructor(o: RouterCertWatchOptions) {
    this.#o = o;
    this.#backend = o.initial.backend;
    this.#api = o.initial.api;
    const gauge = (name: string, credential: string, help: string) =>
      new ExpiryWatch({
        registry: o.registry,
        name,
        help,
        credential,
        logger: o.logger,
        clock: o.clock,
      });
    this.#watch = new Map([
      [
        "backend",
        gauge(
          "backend_client_cert_not_after_timestamp_seconds",
          "router-client-cert",
          "Expiry of the client certificate presented to backends (Unix time)",
        ),
      ],
      [
        "api",
        gauge(
          "api_cert_not_after_timestamp_seconds",
          "router-api-cert",
          "Expiry of the registration API's server certificate (Unix time)",
        ),
      ],
      [
        "https",
        gauge(
          "https_cert_not_after_timestamp_seconds",
          "router-https-cert",
          "Expiry of the HTTPS front listener's certificate (Unix time)",
        ),
      ],
    ]);
    this.#track("backend", o.initial.backend?.cert, o.config.backends.cert);
    this.#track("api", o.initial.api?.cert, o.config.api.cert);
    this.#track("https", o.initial.httpsCert, o.config.https?.cert);
  }

  /** Starts the periodic re-read. */
  start(): void {
    this.#schedule();
  }

  /** Re-reads the pairs now and loads what changed (joins a check running). */
  check(): Promise<void> {
    return this.#running ??= this.#check().finally(() => {
      this.#running = undefined;
    });
  }

  /** Stops the timer and waits for a check in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const w of this.#watch.values()) w.close();
    await this.#running;
  }

  #schedule(): void {
    if (this.#closed) return;
    // A real-time poll, not on the injected clock (whose timers drive
    // pruning and timeouts): it only re-reads files.
    this.#timer = setTimeout(async () => {
      await this.check();
      this.#schedule();
    }, this.#o.config.cert_check_interval);
  }

  async #check(): Promise<void> {
    const { config, logger } = this.#o;
    const b = config.backends;
    const backend = await this.#readPair(b.cert, b.key);
    if (backend && !samePair(backend, this.#backend)) {
      // Remember what was seen, so a bad pair is reported once, not per poll.
      this.#backend = backend;
      try {
        // What was loaded, not what this poll read: the two files are read
        // one after the other, and a swap may fall between them.
        const loaded = await this.#o.reloadBackend();
        this.#track("backend", loaded, b.cert);
        logger.info("router-cert-reloaded", {
          role: "backend client",
          file: b.cert,
          serial: loaded === undefined ? undefined : serialOf(loaded),
        });
      } catch (err) {
        logger.error("router-cert-reload-failed", {
          role: "backend client",
          file: b.cert,
          error: describeError(err),
        });
      }
    }
    const a = config.api;
    const api = this.#o.swapApi
      ? await this.#readPair(a.cert, a.key)
      : undefined;
    if (api && !samePair(api, this.#api)) {
      this.#api = api;
      try {
        await checkPair(api, a.cert!, a.key!);
        await this.#o.swapApi!(api);
        this.#track("api", api.cert, a.cert);
        logger.info("router-cert-reloaded", {
          role: "api",
          file: a.cert,
          serial: serialOf(api.cert),
        });
      } catch (err) {
        logger.error("router-cert-reload-failed", {
          role: "api",
          file: a.cert,
          error: describeError(err),
        });
      }
    }
  }

  async #readPair(
    cert: string | undefined,
    key: string | undefined,
  ): Promise<PemPair | undefined> {
    if (cert === undefined || key === undefined) return undefined;
    try {
      // The files are read one after the other: a swap between the reads
      // would pair the old certificate with the new key. Read until stable.
      let pair = {
        cert: await this.#o.read(cert),
        key: await this.#o.read(key),
      };
      for (let i = 0; i < 3; i++) {
        const again = await this.#o.read(cert);
        if (again === pair.cert) break;
        pair = { cert: again, key: await this.#o.read(key) };
      }
      return pair;
    } catch (err) {
      this.#o.logger.warn("router-cert-unreadable", {
        file: cert,
        error: describeError(err),
      });
      return undefined;
    }
  }

  #track(which: string, pem: string | undefined, file: string | undefined) {
    const w = this.#watch.get(which)!;
    if (pem === undefined) return w.forget(which);
    try {
      const info = parseCertificate(pem);
      w.track(which, {
        labels: {},
        notAfter: info.notAfter.getTime(),
        warnAt: certWarnAt(
          info.notBefore.getTime(),
          info.notAfter.getTime(),
          this.#o.config.expiry_warning.cert_fraction,
        ),
        fields: { serial: info.serial, file },
      });
    } catch {
      // Unparsable: loading it failed and was reported.
    }
  }
}

function samePair(a: PemPair, b: PemPair | undefined): boolean {
  return b !== undefined && a.cert === b.cert && a.key === b.key;
}

function serialOf(pem: string): string | undefined {
  try {
    return parseCertificate(pem).serial;
  } catch {
    return undefined;
  }
}

async function checkPair(p: PemPair, certFile: string, keyFile: string) {
  let serial: string;
  try {
    serial = parseCertificate(p.cert).serial;
  } catch (err) {
    throw new RouterError(
      "ERR_ROUTER_FILE",
      `Cannot use API certificate "${certFile}": ${describeError(err)}`,
      { cause: err },
    );
  }
  const ok = await certificateMatchesKey(p.cert, p.key).catch(() => false);
  if (!ok) {
    throw new RouterError(
      "ERR_ROUTER_FILE",
      `Cannot use API key "${keyFile}": it does not match certificate ${serial}`,
    );
  }
}

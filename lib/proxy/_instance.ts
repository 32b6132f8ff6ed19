/**
 * One app instance: its credentials (with atomic, keep-old-on-failure reload),
 * its trusted client CAs, and its listeners.
 * @module
 */
import { resolve } from "node:path";
import type { SecureContextOptions } from "node:tls";
import type { X509Certificate } from "node:crypto";
import { describeError } from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { certWarnAt } from "../observe/mod.ts";
import {
  fileSignature,
  loadCredentials,
  loadTrustBundle,
} from "./_credentials.ts";
import type { ServedCredentials, TrustBundle } from "./_credentials.ts";
import { TlsListener } from "./_listener.ts";
import type { ProxyMetrics } from "./_metrics.ts";

/** One configured instance. */
export type InstanceConfig = ProxySection["instances"][number];

/** What happened in one reload attempt. */
export interface ReloadOutcome {
  instance: string;
  cert: "ok" | "unchanged" | "error";
  trust: "ok" | "unchanged" | "error" | "none";
  serial: string;
  error?: string;
}

/** Shared settings the instance takes from the proxy section. */
export interface InstanceDeps {
  section: ProxySection;
  clock: Clock;
  logger: Logger;
  metrics: ProxyMetrics;
  /** The CA's CRL (proxy.crl), for mtls client certificates. */
  isRevoked?: (serial: string) => boolean;
}

/** Runtime state of one instance. */
export class InstanceRuntime {
  readonly config: InstanceConfig;
  readonly certPath: string;
  readonly keyPath: string;
  readonly listeners: TlsListener[] = [];
  #deps: InstanceDeps;
  #label: string;
  #creds!: ServedCredentials;
  #trust: TrustBundle | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** Serial whose expiry was logged (once per certificate). */
  #expiryLogged: string | undefined;
  #renewed: Array<() => void> = [];

  constructor(config: InstanceConfig, deps: InstanceDeps) {
    this.config = config;
    this.#deps = deps;
    this.certPath = resolve(config.credentials_dir, config.cert_file);
    this.keyPath = resolve(config.credentials_dir, config.key_file);
    this.#label = config.id ?? config.credentials_dir;
  }

  /** Instance id: configured, else the certificate's CN. */
  get id(): string {
    return this.#label;
  }

  /** What is served now. */
  get credentials(): ServedCredentials {
    return this.#creds;
  }

  /** The trusted client CA bundle (mtls). */
  get trust(): TrustBundle | undefined {
    return this.#trust;
  }

  /**
   * Why this instance must not be offered to routers now: its certificate
   * expired (a router refuses it with 526). Logs `cert-expired` once per
   * certificate. `undefined` while the certificate is valid.
   */
  expiry(now: number = this.#deps.clock.now()): string | undefined {
    const c = this.#creds;
    if (now < c.notAfter.getTime()) return undefined;
    const reason =
      `certificate (serial ${c.serial}) expired at ${c.notAfter.toISOString()}`;
    if (this.#expiryLogged !== c.serial) {
      this.#expiryLogged = c.serial;
      this.#deps.logger.error("cert-expired", {
        instance: this.#label,
        serial: c.serial,
        not_after: c.notAfter.toISOString(),
        detail:
          "not serving routers until fresh credentials arrive; is the rotator running?",
      });
    }
    return reason;
  }

  /** Calls `fn` after each successful swap to new credentials. */
  onRenewed(fn: () => void): void {
    this.#renewed.push(fn);
  }

  /** Files whose change triggers a reload. */
  get watchedFiles(): string[] {
    return [this.certPath, this.keyPath, ...this.config.trusted_client_cas];
  }

  /**
   * Loads credentials and binds the listeners.
   *
   * @throws {CredentialsError} When the first load fails (nothing is bound then).
   * @throws {ListenError} When a listener cannot bind.
   */
  async start(): Promise<void> {
    const d = this.#deps;
    this.#creds = await loadCredentials(this.certPath, this.keyPath, {
      label: this.#label,
      now: d.clock.now(),
    });
    if (this.config.id === undefined && this.#creds.commonName) {
      this.#label = this.#creds.commonName;
    }
    this.#watchExpiry();
    if (this.config.mode === "mtls") {
      this.#trust = await loadTrustBundle(
        this.config.trusted_client_cas,
        this.#label,
      );
    }
    for (const l of this.config.listeners) {
      const listener = new TlsListener({
        instance: this.#label,
        name: l.name ?? `${l.listen.port}-${l.app.port}`,
        listen: l.listen,
        app: l.app,
        mode: this.config.mode,
        minVersion: d.section.min_tls_version,
        connectTimeoutMs: d.section.connect_timeout,
        idleTimeoutMs: d.section.idle_timeout,
        handshakeTimeoutMs: d.section.handshake_timeout,
        secureContext: () => this.#contextOptions(),
        trusted: (): readonly X509Certificate[] => this.#trust?.certs ?? [],
        allowedSans: this.config.allowed_client_sans,
        isRevoked: d.isRevoked,
        clock: d.clock,
        logger: d.logger,
        metrics: d.metrics,
      });
      this.listeners.push(listener);
      await listener.listen();
    }
    d.logger.info("instance-started", {
      instance: this.#label,
      mode: this.config.mode,
      serial: this.#creds.serial,
      not_after: this.#creds.notAfter.toISOString(),
      listeners: this.listeners.map((l) => ({
        name: l.options.name,
        port: l.port,
        app: `${l.options.app.hostname}:${l.options.app.port}`,
      })),
    });
  }

  /**
   * Reloads credentials and the trusted CA bundle. With `force: false` files
   * whose path, inode, mtime and size are unchanged are skipped. A failed load
   * keeps what is served and logs why. Reloads of one instance never overlap.
   */
  reload(force: boolean): Promise<ReloadOutcome> {
    const run = this.#queue.then(() => this.#reload(force));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #reload(force: boolean): Promise<ReloadOutcome> {
    const d = this.#deps;
    const out: ReloadOutcome = {
      instance: this.#label,
      cert: "unchanged",
      trust: this.config.mode === "mtls" ? "unchanged" : "none",
      serial: this.#creds.serial,
    };
    let changed = false;
    const certSig = await fileSignature([this.certPath, this.keyPath]);
    if (force || certSig !== this.#creds.signature) {
      try {
        const next = await loadCredentials(this.certPath, this.keyPath, {
          label: this.#label,
          now: d.clock.now(),
        });
        const prev = this.#creds;
        this.#creds = next;
        this.#watchExpiry();
        changed = true;
        out.cert = "ok";
        out.serial = next.serial;
        this.#counted("cert", "ok");
        d.logger.info("credentials-reloaded", {
          instance: this.#label,
          serial: next.serial,
          previous_serial: prev.serial,
          not_after: next.notAfter.toISOString(),
        });
        for (const fn of this.#renewed) queueMicrotask(fn);
      } catch (err) {
        out.cert = "error";
        out.error = describeError(err);
        this.#counted("cert", "error");
        d.logger.warn("credentials-reload-failed", {
          instance: this.#label,
          error: out.error,
          kept_serial: this.#creds.serial,
        });
      }
    }
    if (this.config.mode === "mtls" && this.#trust) {
      const sig = await fileSignature(this.config.trusted_client_cas);
      if (force || sig !== this.#trust.signature) {
        try {
          const next = await loadTrustBundle(
            this.config.trusted_client_cas,
            this.#label,
          );
          this.#trust = next;
          changed = true;
          out.trust = "ok";
          this.#counted("trust", "ok");
          d.logger.info("trusted-cas-reloaded", {
            instance: this.#label,
            cas: next.fingerprints.length,
          });
        } catch (err) {
          out.trust = "error";
          out.error = [out.error, describeError(err)].filter(Boolean).join(
            "; ",
          );
          this.#counted("trust", "error");
          d.logger.warn("trusted-cas-reload-failed", {
            instance: this.#label,
            error: describeError(err),
          });
        }
      }
    }
    if (changed) {
      try {
        const ctx = this.#contextOptions();
        for (const l of this.listeners) l.setSecureContext(ctx);
      } catch (err) {
        // Listeners that did not take the new context keep serving the old one.
        out.error = describeError(err);
        d.logger.error("credentials-swap-failed", {
          instance: this.#label,
          error: out.error,
        });
      }
    }
    return out;
  }

  /** Warns when the served certificate enters its warning window. */
  #watchExpiry(): void {
    const c = this.#creds;
    this.#deps.metrics.expiry?.certs.track(this.#label, {
      labels: { instance: this.#label },
      notAfter: c.notAfter.getTime(),
      warnAt: certWarnAt(
        c.notBefore.getTime(),
        c.notAfter.getTime(),
        this.#deps.section.expiry_warning.cert_fraction,
      ),
      fields: { serial: c.serial },
    });
  }

  /** Counts one reload attempt in `reloads_total{instance,what,result}`. */
  #counted(what: "cert" | "trust", result: "ok" | "error"): void {
    this.#deps.metrics.reloads.inc({ instance: this.#label, what, result });
  }

  #contextOptions(): SecureContextOptions {
    const o: SecureContextOptions = {
      cert: this.#creds.certPem,
      key: this.#creds.keyPem,
    };
    if (this.#trust) o.ca = this.#trust.pem;
    return o;
  }
}

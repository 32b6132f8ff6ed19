/**
 * `GET /v1/crl.pem`: the CA's CRL, signed by the intermediate, listing every
 * unexpired certificate the ledger holds for a revoked instance or app.
 * Rebuilt when that list changes or the CRL is half way to its nextUpdate.
 * @module
 */
import type { Clock } from "../common/clock.ts";
import { systemClock } from "../common/clock.ts";
import type { MetricsRegistry } from "../observe/mod.ts";
import { createCrl } from "../pki/mod.ts";
import type { Issuer } from "../pki/mod.ts";
import type { RevocationStore } from "./_revocations.ts";

/** How long a CRL is valid (its nextUpdate); holders refetch far sooner. */
export const CRL_VALIDITY_MS = 24 * 3_600_000;

/** Builds and caches the CRL. */
export class CrlPublisher {
  #issuer: Issuer;
  #store: RevocationStore;
  #clock: Clock;
  #cached: { key: string; pem: string; at: number } | undefined;
  #number = 0;
  #entries = 0;

  constructor(
    issuer: Issuer,
    store: RevocationStore,
    options: { clock?: Clock; metrics?: MetricsRegistry } = {},
  ) {
    this.#issuer = issuer;
    this.#store = store;
    this.#clock = options.clock ?? systemClock;
    options.metrics?.gauge(
      "crl_entries",
      "Serials listed in the last CRL served at /v1/crl.pem",
      () => [[{}, this.#entries]],
    );
  }

  /** The CRL as PEM (`-----BEGIN X509 CRL-----`). */
  async pem(): Promise<string> {
    const now = this.#clock.now();
    // A certificate of a revoked instance of a revoked app is listed once.
    const bySerial = new Map<string, { serial: string; revokedAt: string }>();
    for (const r of await this.#store.revokedCertificates(new Date(now))) {
      const seen = bySerial.get(r.serial);
      if (!seen || r.revokedAt < seen.revokedAt) bySerial.set(r.serial, r);
    }
    const revoked = [...bySerial.values()];
    const key = revoked.map((r) => `${r.serial}@${r.revokedAt}`).join(",");
    const c = this.#cached;
    if (c && c.key === key && now - c.at < CRL_VALIDITY_MS / 2) return c.pem;
    // CRL numbers must grow (RFC 5280 §5.2.3): seconds since the epoch keep
    // growing across restarts; +1 covers two builds in one second.
    this.#number = Math.max(this.#number + 1, Math.floor(now / 1000));
    const pem = await createCrl(
      this.#issuer,
      revoked.map((r) => ({
        serial: r.serial,
        revokedAt: new Date(r.revokedAt),
      })),
      { now, validityMs: CRL_VALIDITY_MS, number: this.#number },
    );
    this.#cached = { key, pem, at: now };
    this.#entries = revoked.length;
    return pem;
  }
}

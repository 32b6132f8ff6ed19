/**
 * Backend connection pools: one pool of keep-alive connections per endpoint.
 * TLS connections use `node:tls` with `servername` and `checkServerIdentity`
 * bound to the endpoint's `server_cert_domain_san` (the instance id), trusting
 * only the backend CA and presenting the router's client certificate in mTLS
 * mode. `fetch` cannot verify a SAN other than the dialed address and
 * `Deno.startTls` cannot present a client certificate, hence `node:tls`.
 * @module
 */
import tls from "node:tls";
import type { Endpoint } from "./_pool.ts";
import { H1Pool } from "./_h1.ts";

/** PEM material for backend TLS. */
export interface BackendTls {
  /** Trusted roots for backend certificates. Absent: the system store. */
  ca?: string;
  /** Client certificate chain (mTLS). */
  cert?: string;
  /** Client private key (mTLS). */
  key?: string;
}

/** Options of {@linkcode Transports}. */
export interface TransportOptions {
  tls: BackendTls;
  /** Idle keep-alive connections kept per endpoint. @default {100} */
  maxIdle?: number;
  /** Idle connection timeout in ms. @default {90000} */
  idleTimeoutMs?: number;
  /** TCP connect timeout in ms. @default {5000} */
  dialTimeoutMs?: number;
  /** TLS handshake timeout in ms. @default {10000} */
  handshakeTimeoutMs?: number;
}

/** An error carrying a stable `code`, for the failure classifiers. */
export function codedError(code: string, message: string): Error {
  const err = new Error(message) as Error & { code: string };
  err.code = code;
  return err;
}

/**
 * The identity check: the certificate must name `san` (DNS SAN), whatever
 * address was dialed.
 */
export function identityChecker(
  san: string,
): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  return (_host, cert) => tls.checkServerIdentity(san, cert);
}

/** Creates, hands out and retires the per-endpoint connection pools. */
export class Transports {
  #tls: BackendTls;
  #maxIdle: number;
  #idleMs: number;
  #dialMs: number;
  #handshakeMs: number;
  #pools = new Set<H1Pool>();

  constructor(options: TransportOptions) {
    this.#tls = options.tls;
    this.#maxIdle = options.maxIdle ?? 100;
    this.#idleMs = options.idleTimeoutMs ?? 90_000;
    this.#dialMs = options.dialTimeoutMs ?? 5_000;
    this.#handshakeMs = options.handshakeTimeoutMs ?? 10_000;
  }

  /** The endpoint's connection pool, created on first use. */
  poolFor(ep: Endpoint): H1Pool {
    const existing = ep.transport as H1Pool | undefined;
    if (existing !== undefined) return existing;
    const pool = new H1Pool({
      host: ep.host,
      port: ep.port,
      tls: ep.tls ? this.tlsOptions(ep.san) : undefined,
      maxIdle: this.#maxIdle,
      dialTimeoutMs: this.#dialMs,
      handshakeTimeoutMs: this.#handshakeMs,
    });
    this.#pools.add(pool);
    ep.transport = pool;
    return pool;
  }

  /** TLS client options for a backend that must prove it is `san`. */
  tlsOptions(san: string): tls.ConnectionOptions {
    const t = this.#tls;
    return {
      servername: san,
      checkServerIdentity: identityChecker(san),
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    };
  }

  /** Replaces the TLS material (used by new pools). */
  setTls(material: BackendTls): void {
    this.#tls = material;
  }

  /** Retires the endpoint's pool: idle connections close now, busy ones after their request. */
  release(ep: Endpoint): void {
    const pool = ep.transport as H1Pool | undefined;
    if (pool === undefined) return;
    ep.transport = undefined;
    this.#pools.delete(pool);
    pool.retire();
  }

  /** Closes keep-alive connections idle for longer than the idle timeout. */
  sweepIdle(now: number): void {
    for (const pool of this.#pools) pool.sweep(now, this.#idleMs);
  }

  /** How often {@linkcode Transports.sweepIdle} should run, in ms. */
  get sweepIntervalMs(): number {
    return Math.max(100, Math.min(this.#idleMs / 3, 30_000));
  }

  /** Number of live pools (for tests and metrics). */
  get size(): number {
    return this.#pools.size;
  }

  /** Destroys every pool and connection. */
  closeAll(): void {
    for (const pool of this.#pools) pool.destroy();
    this.#pools.clear();
  }
}

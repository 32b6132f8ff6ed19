/** The `credhub` section: `sigil credhub`. @module */
import { z } from "zod";
import {
  Address,
  Duration,
  FilePath,
  LogLevel,
  safeJwksUrl,
} from "./_common.ts";
import { LedgerStoreSetting } from "./_ca_store.ts";

/**
 * The UAA-compatible token endpoint `sigil credhub` serves for the `credhub`
 * CLI (`POST /oauth/token`, client_credentials).
 */
export const CredhubUaaSection = z.strictObject({
  /** Clients and their hashed secrets (mode 0600), written by `sigil credhub client add`. */
  clients_file: FilePath,
  /** ES256 key that signs the tokens: the CA's `token.key` (`sigil ca init` writes it, mode 0600). */
  token_key_file: FilePath,
  /** Lifetime of an issued token. */
  token_ttl: Duration.refine((ms) => ms >= 10_000 && ms <= 86_400_000, {
    message: 'must be between "10s" and "24h"',
  }).prefault("5m"),
  /** Failed logins allowed per client and caller address within `failure_window`. */
  max_failures: z.number().int().positive().default(5),
  /** Window of `max_failures`; further attempts answer 429 until it ends. */
  failure_window: Duration.refine((ms) => ms >= 1_000, {
    message: 'must be at least "1s"',
  }).prefault("1m"),
});
/** Resolved `credhub.uaa` section. */
export type CredhubUaaSection = z.output<typeof CredhubUaaSection>;

/** Settings of the CredHub-compatible credential store. */
export const CredhubSection = z.strictObject({
  /** HTTPS listen address (CredHub's port is 8844). */
  listen: Address.prefault("127.0.0.1:8844"),
  /** Lowest level of log lines written (debug, info, warn, error). */
  log_level: LogLevel,
  /** SQLite database file (created when missing); or set `store`. */
  database: FilePath.optional(),
  /**
   * Where the credentials live, as `ca.store`: a SQLite path, or
   * `postgres://user@host:5432/db?sslmode=verify-full` (or
   * `{ url, password_file, ca_bundle }`) for replicas on one PostgreSQL.
   * Absent → `database`.
   */
  store: LedgerStoreSetting.optional(),
  /** Directory of AES-256-GCM key files (`<id>.key`, mode 0600); one is made when empty. */
  keys_dir: FilePath,
  /** The server's own certificate chain (PEM). */
  tls_cert_file: FilePath,
  /** The server's private key (PEM). */
  tls_key_file: FilePath,
  /** CAs trusted for mTLS instance certificates (PEM bundle). */
  trusted_cas_file: FilePath,
  /** Optional deny list: one certificate serial (hex) per line; checked on every request when present. */
  revoked_serials_file: FilePath.optional(),
  /** URL in `/info` `auth-server.url` (default: this server's https URL). */
  auth_server_url: z.url().optional(),
  /** Bearer tokens: the CA's JWKS URL. */
  jwks_url: z.url().optional(),
  /** PEM bundle trusted when fetching `jwks_url` over HTTPS (default: the system store). */
  jwks_ca_file: FilePath.optional(),
  /** Bearer tokens: a local public key file (JWK, JWKS or PEM SPKI). */
  public_key_file: FilePath.optional(),
  /** Expected token issuer. */
  token_issuer: z.string().min(1).default("sigil-ca"),
  /** Expected token audience. */
  token_audience: z.string().min(1).default("sigil"),
  /** Largest accepted request body in bytes. */
  max_body_bytes: z.number().int().positive().default(1_048_576),
  /** Serve a UAA-compatible token endpoint for the `credhub` CLI (off when absent). */
  uaa: CredhubUaaSection.optional(),
  /**
   * Warn (`credential-expiring`) once less than this fraction of the TLS
   * certificate's lifetime is left; its expiry is on /metrics as
   * `sigil_credhub_tls_cert_not_after_timestamp_seconds`.
   */
  expiry_warning: z.strictObject({
    cert_fraction: z.number().gt(0).lt(1).default(0.2),
  }).prefault({}),
}).refine((c) => (c.database === undefined) !== (c.store === undefined), {
  message:
    "set exactly one of database (a SQLite file) or store (a SQLite file or a postgres:// URL)",
  path: ["store"],
}).refine((c) => !(c.jwks_url && c.public_key_file), {
  message:
    "set at most one of jwks_url or public_key_file (where bearer-token keys come from)",
  path: ["public_key_file"],
}).refine((c) => !c.jwks_ca_file || c.jwks_url, {
  message: "jwks_ca_file is only used to fetch jwks_url: set jwks_url too",
  path: ["jwks_ca_file"],
}).refine((c) => c.jwks_url === undefined || safeJwksUrl(c.jwks_url), {
  message:
    "must be an https:// URL unless its host is loopback (127.x, ::1, localhost): keys fetched over plain http can be swapped in transit",
  path: ["jwks_url"],
}).refine(
  (s) =>
    !s.uaa || s.auth_server_url !== undefined ||
    !["0.0.0.0", "::"].includes(s.listen.hostname),
  {
    message:
      "is required with uaa when listen is a wildcard address: set the https URL the credhub CLI reaches this server at (it is /info's auth-server.url)",
    path: ["auth_server_url"],
  },
);
/** Resolved `credhub` section. */
export type CredhubSection = z.output<typeof CredhubSection>;

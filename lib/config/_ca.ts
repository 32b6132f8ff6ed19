/** The `ca` section: `sigil ca serve`. @module */
import { z } from "zod";
import { KEY_TYPES } from "../pki/mod.ts";
import { Address, Duration, FilePath, KeyType, LogLevel } from "./_common.ts";
import { LedgerStoreSetting } from "./_ca_store.ts";

/** Settings of the certificate authority server. */
export const CaSection = z.strictObject({
  /** CA directory written by `sigil ca init` (keys, certificates, ledger). */
  dir: FilePath,
  /**
   * Where the ledger lives: absent → `<dir>/ledger.sqlite`; a path → that
   * SQLite file; `postgres://user@host:5432/db?sslmode=verify-full` (or
   * `{ url, password_file, ca_bundle }`) → PostgreSQL shared by replicas.
   */
  store: LedgerStoreSetting.optional(),
  /** HTTPS listen address of the signing API. */
  listen: Address.prefault("127.0.0.1:8443"),
  /** DNS names in the CA server's own TLS certificate. */
  server_names: z.array(z.string().min(1)).default(["localhost"]),
  /** IP addresses in the CA server's own TLS certificate. */
  server_ips: z.array(z.ipv4().or(z.ipv6())).default(["127.0.0.1"]),
  /** Validity of an instance certificate when the request names none. */
  default_validity: Duration.refine((ms) => ms >= 60_000, {
    message: 'must be at least "1m"',
  }).prefault("24h"),
  /** Longest validity a request may ask for. */
  max_validity: Duration.refine((ms) => ms >= 60_000, {
    message: 'must be at least "1m"',
  }).prefault("168h"),
  /** How far notBefore is backdated to tolerate clock skew. */
  backdate: Duration.prefault("1m"),
  /** Key types accepted in CSRs. */
  allowed_key_types: z.array(KeyType).min(1).default([...KEY_TYPES]),
  /** Per-caller (token subject) rate limit on /v1/sign. */
  rate_limit: z.strictObject({
    /** Sustained requests per second per caller. */
    per_second: z.number().positive().default(50),
    /** Burst size per caller. */
    burst: z.number().int().positive().default(100),
  }).prefault({}),
  /** Largest accepted request body in bytes. */
  max_body_bytes: z.number().int().positive().default(65536),
  /**
   * Warn (log `ca-certificate-expiring`) when the root or the current
   * intermediate expires within this long; checked at start and hourly.
   */
  expiry_warning: Duration.refine((ms) => ms > 0, {
    message: 'must be longer than "0s"',
  }).prefault("720h"),
  /** Lowest level of log lines written (debug, info, warn, error). */
  log_level: LogLevel,
}).refine((s) => s.default_validity <= s.max_validity, {
  message: "must not be longer than max_validity",
  path: ["default_validity"],
});
/** Resolved `ca` section. */
export type CaSection = z.output<typeof CaSection>;

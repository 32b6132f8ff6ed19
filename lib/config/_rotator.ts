/** The `rotator` section: `sigil rotator`. @module */
import { z } from "zod";
import {
  Address,
  Duration,
  FilePath,
  IdentityValue,
  KeyType,
  LogLevel,
} from "./_common.ts";
import { parseDuration } from "../common/duration.ts";

/**
 * When to renew: a fraction of the lifetime (`0.667` = at two thirds) or a
 * duration before expiry (`"8h"`).
 */
export const RenewAt = z.union([z.number(), z.string()]).transform(
  (value, ctx) => {
    if (typeof value === "number") {
      if (value > 0 && value < 1) {
        return { kind: "fraction" as const, fraction: value };
      }
    } else {
      try {
        const ms = parseDuration(value);
        if (ms > 0) {
          return { kind: "before-expiry" as const, beforeExpiryMs: ms };
        }
      } catch {
        // reported below
      }
    }
    ctx.addIssue({
      code: "custom",
      message: `invalid renew_at ${
        JSON.stringify(value)
      }: use a fraction of the lifetime between 0 and 1 (e.g. 0.667) or a duration before expiry (e.g. "8h")`,
    });
    return z.NEVER;
  },
);
/** A resolved renewal point. */
export type RenewAt = z.output<typeof RenewAt>;

/** A file mode written as an octal string (`"0600"`) or a number (`0o600`). */
export const FileMode = z.union([
  z.string().regex(/^0?[0-7]{3}$/, 'must be an octal mode such as "0600"')
    .transform((s) => parseInt(s, 8)),
  z.number().int().min(0).max(0o777, {
    message: 'write modes as a quoted octal string, e.g. "0600"',
  }),
]);

/** A signal name accepted by `reload_signal`. */
export const ReloadSignal = z.enum([
  "SIGHUP",
  "SIGUSR1",
  "SIGUSR2",
  "SIGTERM",
  "SIGINT",
]);

const Hooks = {
  /** Command (argv list, no shell) run after each successful swap. */
  on_rotate: z.array(z.string().min(1)).min(1).optional(),
  /** Signal sent to the process in `pid_file` after each successful swap. */
  reload_signal: ReloadSignal.optional(),
  /** File holding the pid to signal; read fresh every time. */
  pid_file: FilePath.optional(),
};

/** `reload_signal` and `pid_file` are set together or not at all. */
function hooksPaired(
  i: { reload_signal?: unknown; pid_file?: unknown },
): boolean {
  return (i.reload_signal === undefined) === (i.pid_file === undefined);
}
const HOOKS_PAIRED = {
  message: "reload_signal and pid_file go together",
  path: ["pid_file"],
};

/** One instance the rotator keeps credentials for. */
export const RotatorInstance = z.strictObject({
  /** Instance (container) GUID: the certificate's CN and DNS SAN. */
  instance_id: IdentityValue,
  app: IdentityValue,
  space: IdentityValue,
  org: IdentityValue,
  /** Addresses of the instance (IP SANs). */
  ips: z.array(z.ipv4().or(z.ipv6())).default([]),
  /** Credentials directory: `instance.crt` and `instance.key` live here. */
  dir: FilePath,
  ...Hooks,
}).refine(hooksPaired, HOOKS_PAIRED);
/** A resolved instance entry. */
export type RotatorInstance = z.output<typeof RotatorInstance>;

/**
 * A router identity the rotator keeps fresh (needs a `cert.router` token):
 * one pair for the router's backend client certificate and, with the API's
 * address in `ips` or `dns_names`, its API server certificate.
 */
export const RotatorRouter = z.strictObject({
  /** Router name: the CN, first DNS SAN and `spiffe://<td>/router/<name>`. */
  name: IdentityValue,
  /** More DNS SANs (e.g. the name proxies dial the API by). */
  dns_names: z.array(z.string().min(1)).default([]),
  /** IP SANs (e.g. the API's address). */
  ips: z.array(z.ipv4().or(z.ipv6())).default([]),
  /** Credentials directory: `instance.crt` and `instance.key` live here. */
  dir: FilePath,
  ...Hooks,
}).refine(hooksPaired, HOOKS_PAIRED);
/** A resolved router entry. */
export type RotatorRouter = z.output<typeof RotatorRouter>;

/** Settings of `sigil rotator`. */
export const RotatorSection = z.strictObject({
  /**
   * Base URL of the CA, e.g. `https://ca.internal:8443`, or a list of CA
   * replicas tried in turn (starting with the last one that answered).
   */
  ca_url: z.union([
    z.url({ protocol: /^https$/ }),
    z.array(z.url({ protocol: /^https$/ })).min(1, "list at least one CA URL"),
  ]).transform((v) => typeof v === "string" ? [v] : v),
  /** Lowest level of log lines written (debug, info, warn, error). */
  log_level: LogLevel,
  /** PEM bundle the CA's TLS certificate and the issued chains must lead to. */
  ca_bundle: FilePath,
  /** File holding this cell's bearer token (`sigil ca token`); read on every request. */
  token_file: FilePath,
  /** Renewal point: lifetime fraction or duration before expiry. */
  renew_at: RenewAt.prefault(0.667),
  /** Random spread of the renewal point, as a fraction of the time to it. */
  jitter: z.number().min(0).max(0.5).default(0.1),
  /** Key algorithm of each fresh key. */
  key_type: KeyType.default("ec-p256"),
  /** Validity to request; the CA's default when absent. */
  validity: z.string().regex(/^(\d+(\.\d+)?(ms|s|m|h|d))+$/, {
    message: 'must be a duration such as "24h"',
  }).optional(),
  /** Shortest time between two renewals of one instance (guards a hot loop). */
  min_interval: Duration.prefault("30s"),
  /** Timeout of one request to the CA. */
  request_timeout: Duration.prefault("30s"),
  /** Retry schedule while the CA is down or refuses. */
  backoff: z.strictObject({
    initial: Duration.prefault("1s"),
    max: Duration.prefault("5m"),
    /** Each delay is shortened by up to this fraction at random. */
    jitter: z.number().min(0).max(1).default(0.2),
  }).prefault({}),
  /** While expired, an error event is logged this often. */
  expired_log_interval: Duration.prefault("1m"),
  /** Prometheus listener (`GET /metrics`); off when absent. */
  metrics_listen: Address.optional(),
  /** Mode of the credentials directories. */
  dir_mode: FileMode.default(0o700),
  /** Mode of `instance.key`. */
  key_mode: FileMode.default(0o600).refine((m) => (m & 0o077) === 0, {
    message:
      'must not give group or others access to private keys; use "0600" or "0400"',
  }),
  /** Mode of `instance.crt`. */
  cert_mode: FileMode.default(0o644),
  /** Timeout of an `on_rotate` command. */
  hook_timeout: Duration.prefault("30s"),
  ...Hooks,
  /** The instances on this cell. */
  instances: z.array(RotatorInstance).default([]),
  /** Router identities on this VM (the token must have scope `cert.router`). */
  routers: z.array(RotatorRouter).default([]),
  /**
   * Warn (`credential-expiring`) when the token in `token_file` expires
   * within this long; certificates warn when less than
   * `expiry_warning.cert_fraction` of their lifetime is left.
   */
  expiry_warning: z.strictObject({
    token: Duration.prefault("7d"),
    cert_fraction: z.number().gt(0).lt(1).default(0.2),
  }).prefault({}),
}).refine(hooksPaired, HOOKS_PAIRED).refine(
  (s) =>
    new Set(s.instances.map((i) => i.instance_id)).size === s.instances.length,
  { message: "instance_id values must be unique", path: ["instances"] },
).refine(
  (s) => new Set(s.instances.map((i) => i.dir)).size === s.instances.length,
  { message: "each instance needs its own dir", path: ["instances"] },
).refine(
  (s) =>
    new Set([
      ...s.instances.map((i) => i.instance_id),
      ...s.routers.map((r) => r.name),
    ]).size === s.instances.length + s.routers.length,
  {
    message: "router names must be unique and differ from every instance_id",
    path: ["routers"],
  },
).refine(
  (s) =>
    new Set([...s.instances, ...s.routers].map((i) => i.dir)).size ===
      s.instances.length + s.routers.length,
  { message: "each router needs its own dir", path: ["routers"] },
).refine((s) => s.backoff.initial > 0 && s.backoff.initial <= s.backoff.max, {
  message: "initial must be positive and at most max",
  path: ["backoff", "initial"],
});
/** Resolved `rotator` section. */
export type RotatorSection = z.output<typeof RotatorSection>;
/** The `rotator` section as users write it. */
export type RotatorSectionInput = z.input<typeof RotatorSection>;

/** The `proxy` section: `sigil proxy`. @module */
import { z } from "zod";
import {
  Address,
  Duration,
  FilePath,
  formatAddress,
  isLoopback,
  LogLevel,
} from "./_common.ts";
import { CrlSource } from "./_crl.ts";

/** One TLS port in front of one app port. */
export const ProxyListener = z.strictObject({
  /** Name in stats and metrics. @default {"<listen port>-<app port>"} */
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, {
    message: "must be 1-64 letters, digits, '.', '_' or '-'",
  }).optional(),
  /** TLS address clients connect to, e.g. `0.0.0.0:61001` (port 0: any free port). */
  listen: Address,
  /** The app's plain TCP address, e.g. `127.0.0.1:8080`. */
  app: Address,
});
/** A resolved listener. */
export type ProxyListener = z.output<typeof ProxyListener>;

/** One route-registration target: a router's HTTP registration API. */
export const ProxyRouterTarget = z.strictObject({
  /** Base URL; the proxy POSTs to `<url>/v1/register` and `<url>/v1/unregister`. */
  url: z.url({
    protocol: /^https?$/,
    error: "must be an http:// or https:// URL",
  }),
  /** File holding the bearer token (read for every send; never logged). */
  token_file: FilePath.optional(),
  /** PEM bundle trusted for an https router URL (system roots when absent). */
  ca_bundle: FilePath.optional(),
}).refine(
  // A bearer token over plain http is readable by anyone on the path.
  (t) => !t.token_file || !isPlainRemote(t.url),
  {
    message:
      "refusing to send the bearer token over plain http to a non-loopback host: send tokens over https (set the router's api.cert/api.key and use https://...)",
    path: ["url"],
  },
);
/** A resolved router target. */
export type ProxyRouterTarget = z.output<typeof ProxyRouterTarget>;

/** Where and how an instance registers its routes. */
export const ProxyRegister = z.strictObject({
  /** Hostnames (with optional /path) routed to this instance. */
  routes: z.array(z.string().min(1)).min(1, "must list at least one route"),
  /** Address the routers dial (this VM's IP). */
  host: z.string().min(1),
  /**
   * Which listener's port is advertised as `tls_port`: its `name`, or its index
   * in `listeners`. @default {the first listener}
   */
  tls_listener: z.union([z.string().min(1), z.number().int().min(0)]).default(
    0,
  ),
  /** Port advertised as `tls_port` when it differs from the bound one (NAT). */
  advertised_tls_port: z.number().int().min(1).max(65535).optional(),
  /** App GUID (`app`); read from the certificate's `app:` OU when absent. */
  app: z.string().min(1).optional(),
  /** `private_instance_index`. */
  instance_index: z.string().default("0"),
  /** Extra tags sent with every message. */
  tags: z.record(z.string(), z.string()).default({}),
  /** Heartbeat interval. */
  interval: Duration.prefault("20s"),
  /** Random extra delay per heartbeat, as a fraction of `interval` (0-1). */
  jitter: z.number().min(0).max(1).default(0.2),
  /** Routers' HTTP registration APIs. */
  routers: z.array(ProxyRouterTarget).default([]),
  /** NATS route bus (Cloud Foundry's `router.register` subject). */
  nats: z.strictObject({
    /**
     * `nats://host:port` URLs (or `tls://...`). Credentials go in the URL
     * (`nats://user:pass@host:4222`); logs show them redacted.
     */
    servers: z.array(z.string().min(1)).min(1),
    /**
     * PEM bundle trusted for the NATS servers' certificates; setting it turns
     * on TLS to NATS. Plain TCP when absent.
     */
    tls_ca: FilePath.optional(),
  }).optional(),
}).refine((r) => r.routers.length > 0 || r.nats !== undefined, {
  message: "register needs at least one target: routers or nats",
  path: ["routers"],
});
/** A resolved registration block. */
export type ProxyRegister = z.output<typeof ProxyRegister>;

/** One app instance served by the proxy. */
export const ProxyInstance = z.strictObject({
  /**
   * Instance id, used in logs, stats and as `private_instance_id`. Read from the
   * certificate's CN when absent.
   */
  id: z.string().min(1).optional(),
  /** Directory holding `instance.crt` (leaf + intermediate) and `instance.key`. */
  credentials_dir: FilePath,
  /** Certificate file name or path (relative to `credentials_dir`). */
  cert_file: FilePath.default("instance.crt"),
  /** Key file name or path (relative to `credentials_dir`). */
  key_file: FilePath.default("instance.key"),
  /** `tls`: serve the instance cert to anyone. `mtls`: also require a client cert. */
  mode: z.enum(["tls", "mtls"], {
    error: 'must be "tls" or "mtls" (there is no default)',
  }),
  /** PEM files with the CAs a client certificate must chain to (mtls only). */
  trusted_client_cas: z.array(FilePath).default([]),
  /**
   * Client SANs allowed in (mtls only): exact DNS names or URIs, `*` allowed as
   * one whole DNS label (`*.service.cf.internal`). Required with mtls: the
   * router's identity, so no other app instance gets in.
   */
  allowed_client_sans: z.array(z.string().min(1)).default([]),
  /** TLS ports and the app ports behind them. */
  listeners: z.array(ProxyListener).min(1, "must list at least one listener"),
  /** Route registration with the routers (optional). */
  register: ProxyRegister.optional(),
}).superRefine((inst, ctx) => {
  if (inst.mode === "mtls" && inst.trusted_client_cas.length === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["trusted_client_cas"],
      message:
        'mode "mtls" needs at least one trusted client CA file (it would otherwise refuse every client)',
    });
  }
  if (inst.mode === "mtls" && inst.allowed_client_sans.length === 0) {
    // The instance-identity root signs every app instance's certificate:
    // trusting it alone would let any instance bypass the router and call
    // this one directly (CF pins the router's SAN at the container proxy).
    ctx.addIssue({
      code: "custom",
      path: ["allowed_client_sans"],
      message:
        "mode \"mtls\" needs the router's identity here, a SAN of the router's client certificate (backends.cert), e.g. \"spiffe://<trust-domain>/org/system/space/system/app/router/instance/router-1\" as 'sigil ca issue --instance router-1 --app router --space system --org system' issues it: without it every certificate trusted_client_cas signs gets in, so any other app instance could bypass the router and call this one directly",
    });
  }
  if (inst.mode === "tls" && inst.trusted_client_cas.length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["trusted_client_cas"],
      message: 'only used with mode "mtls"; set mode: mtls or remove it',
    });
  }
  if (inst.mode === "tls" && inst.allowed_client_sans.length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["allowed_client_sans"],
      message: 'only used with mode "mtls"; set mode: mtls or remove it',
    });
  }
  for (const [j, p] of inst.allowed_client_sans.entries()) {
    const why = checkSanPattern(p);
    if (why) {
      ctx.addIssue({
        code: "custom",
        path: ["allowed_client_sans", j],
        message: why,
      });
    }
  }
  const names = new Set<string>();
  for (const [i, l] of inst.listeners.entries()) {
    const name = l.name ?? `${l.listen.port}-${l.app.port}`;
    if (names.has(name) && l.listen.port !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["listeners", i, "name"],
        message: `duplicate listener name "${name}"`,
      });
    }
    names.add(name);
  }
  const t = inst.register?.tls_listener;
  if (typeof t === "number" && t >= inst.listeners.length) {
    ctx.addIssue({
      code: "custom",
      path: ["register", "tls_listener"],
      message: `no listener at index ${t} (there are ${inst.listeners.length})`,
    });
  }
  if (
    typeof t === "string" &&
    !inst.listeners.some((l) =>
      (l.name ?? `${l.listen.port}-${l.app.port}`) === t
    )
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["register", "tls_listener"],
      message: `no listener named "${t}"`,
    });
  }
});
/** A resolved instance. */
export type ProxyInstance = z.output<typeof ProxyInstance>;

/** Settings of `sigil proxy`. */
export const ProxySection = z.strictObject({
  /** Admin API (stats, certs, config_dump, ready, metrics); loopback only. */
  admin_listen: Address.prefault("127.0.0.1:61003"),
  /** Lowest level of log lines written (debug, info, warn, error). */
  log_level: LogLevel,
  /** Lowest TLS version accepted (1.3 is always preferred). */
  min_tls_version: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2"),
  /** Time allowed to connect to the app before the client is dropped. */
  connect_timeout: Duration.prefault("250ms"),
  /** TLS handshake deadline per client connection. */
  handshake_timeout: Duration.prefault("10s"),
  /** A connection with no bytes either way for this long is closed ("0": never). */
  idle_timeout: Duration.prefault("1h"),
  /** On SIGTERM, how long live connections may finish before they are cut. */
  drain_timeout: Duration.prefault("15s"),
  /** Fallback stat of credential files (catches symlink swaps events miss). */
  reload_poll_interval: Duration.prefault("5s"),
  /** Delay after a filesystem event before reloading (coalesces bursts). */
  reload_debounce: Duration.prefault("100ms"),
  /**
   * The CA's CRL: mtls listeners refuse a client certificate it lists. Off
   * when absent.
   */
  crl: CrlSource.optional(),
  /** The app instances this process serves. */
  instances: z.array(ProxyInstance).min(1, "must list at least one instance"),
  /**
   * Warn (`credential-expiring`) when a router token (`register.routers[].token_file`)
   * expires within `token`, or an instance certificate has less than
   * `cert_fraction` of its lifetime left.
   */
  expiry_warning: z.strictObject({
    token: Duration.prefault("7d"),
    cert_fraction: z.number().gt(0).lt(1).default(0.2),
  }).prefault({}),
}).superRefine((s, ctx) => {
  if (!isLoopback(s.admin_listen.hostname)) {
    ctx.addIssue({
      code: "custom",
      path: ["admin_listen"],
      message:
        `must be a loopback address (127.0.0.1, ::1 or localhost), not "${
          formatAddress(s.admin_listen)
        }"`,
    });
  }
  const seen = new Map<string, string>();
  const ids = new Set<string>();
  for (const [i, inst] of s.instances.entries()) {
    if (inst.id !== undefined) {
      if (ids.has(inst.id)) {
        ctx.addIssue({
          code: "custom",
          path: ["instances", i, "id"],
          message: `duplicate instance id "${inst.id}"`,
        });
      }
      ids.add(inst.id);
    }
    for (const [j, l] of inst.listeners.entries()) {
      if (l.listen.port === 0) continue;
      const key = formatAddress(l.listen);
      const where = `instances.${i}.listeners.${j}`;
      const prev = seen.get(key);
      if (prev) {
        ctx.addIssue({
          code: "custom",
          path: ["instances", i, "listeners", j, "listen"],
          message: `address "${key}" is already used by ${prev}`,
        });
      }
      seen.set(key, where);
    }
  }
});
/** Resolved `proxy` section. */
export type ProxySection = z.output<typeof ProxySection>;
/** The `proxy` section as users write it. */
export type ProxySectionInput = z.input<typeof ProxySection>;

/** An `http://` URL whose host is not loopback. */
function isPlainRemote(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === "http:" && !isLoopback(u.hostname);
  } catch {
    return false; // z.url() reports the syntax
  }
}

/**
 * Checks an `allowed_client_sans` pattern: a URI (contains `://`, matched
 * exactly) or a DNS name where `*` may appear in one label.
 *
 * @returns An error message, or `undefined` when the pattern is usable.
 * @example
 * ```ts
 * import { checkSanPattern } from "./_proxy.ts";
 * console.assert(checkSanPattern("*.service.cf.internal") === undefined);
 * console.assert(checkSanPattern("*.*.internal") !== undefined);
 * ```
 */
export function checkSanPattern(pattern: string): string | undefined {
  if (pattern.includes("://")) {
    return pattern.includes("*")
      ? `"${pattern}": wildcards are only allowed in DNS names`
      : undefined;
  }
  const labels = pattern.split(".");
  if (labels.some((l) => l === "")) return `"${pattern}": empty DNS label`;
  const wild = labels.filter((l) => l.includes("*"));
  if (wild.length > 1) {
    return `"${pattern}": "*" is allowed in one label only`;
  }
  if (labels.length > 1 && labels[labels.length - 1]!.includes("*")) {
    return `"${pattern}": "*" is not allowed in the top-level label`;
  }
  return undefined;
}

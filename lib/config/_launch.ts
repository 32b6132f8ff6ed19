/** The `launch` section: `sigil launch -- CMD ARGS…`. @module */
import { z } from "zod";
import { Duration, FilePath } from "./_common.ts";

const Port = z.number().int().min(1).max(65535);

/**
 * One port mapping as Diego lists it in `CF_INSTANCE_PORTS` (executor
 * `depot/steps/run_step.go`): the app's port and the host / TLS-proxy ports
 * in front of it.
 */
export const LaunchPort = z.strictObject({
  /** The port the app listens on inside its container (`PORT`). */
  internal: Port,
  /** The host port mapped to `internal` (`CF_INSTANCE_PORT` for the first). */
  external: Port.optional(),
  /** The TLS proxy's port in front of `internal` (e.g. 61001). */
  internal_tls_proxy: Port.optional(),
  /** The host port mapped to the TLS proxy port. */
  external_tls_proxy: Port.optional(),
});
/** A resolved port mapping. */
export type LaunchPort = z.output<typeof LaunchPort>;

/** Settings of `sigil launch`; every one has an environment fallback. */
export const LaunchSection = z.strictObject({
  /**
   * CredHub's URL. Default: `credhub-uri` of `VCAP_PLATFORM_OPTIONS`, as
   * Diego's launcher does; no interpolation when neither is set.
   */
  credhub_url: z.url({ protocol: /^https$/, error: "must be an https:// URL" })
    .optional(),
  /** PEM bundle trusted for CredHub's server certificate (added to CF_SYSTEM_CERT_PATH's *.crt). */
  ca_bundle: FilePath.optional(),
  /** Directory of `*.crt` trusted CAs; default: `CF_SYSTEM_CERT_PATH`. */
  system_cert_path: FilePath.optional(),
  /**
   * The instance's credentials directory (the rotator's `dir`): sets
   * `CF_INSTANCE_CERT` / `CF_INSTANCE_KEY` to its `instance.crt` /
   * `instance.key`. Default: those variables from the environment.
   */
  credentials_dir: FilePath.optional(),
  /** Interpolation attempts before giving up (exit 4). */
  attempts: z.number().int().min(1).max(100).default(3),
  /** Delay before the first retry; doubled after each failure. */
  retry_delay: Duration.prefault("1s"),
  /** Longest delay between two attempts. */
  max_retry_delay: Duration.prefault("30s"),
  /** Timeout of one interpolation request. */
  request_timeout: Duration.prefault("30s"),
  /** The instance's identity and network, exported as Diego does. */
  instance: z.strictObject({
    /** `CF_INSTANCE_GUID` / `INSTANCE_GUID`; default: the certificate's CN. */
    guid: z.string().min(1).optional(),
    /** `CF_INSTANCE_INDEX` / `INSTANCE_INDEX`. */
    index: z.number().int().min(0).optional(),
    /** `CF_INSTANCE_IP`: the address the instance is reached at (the cell's). */
    ip: z.ipv4().or(z.ipv6()).optional(),
    /** `CF_INSTANCE_INTERNAL_IP` (default: `ip`). */
    internal_ip: z.ipv4().or(z.ipv6()).optional(),
    /** `CF_INSTANCE_PORTS`; the first gives `CF_INSTANCE_PORT`, `CF_INSTANCE_ADDR`, `PORT`. */
    ports: z.array(LaunchPort).default([]),
  }).prefault({}),
}).refine((s) => s.retry_delay <= s.max_retry_delay, {
  message: "retry_delay must be at most max_retry_delay",
  path: ["retry_delay"],
});
/** Resolved `launch` section. */
export type LaunchSection = z.output<typeof LaunchSection>;
/** The `launch` section as users write it. */
export type LaunchSectionInput = z.input<typeof LaunchSection>;

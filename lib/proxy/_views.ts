/**
 * What the admin API and `RunningProxy` report: served certificates,
 * readiness, and the effective config without secrets.
 * @module
 */
import net from "node:net";
import { formatDuration } from "../common/mod.ts";
import { formatAddress } from "../config/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import type { InstanceRuntime } from "./_instance.ts";
import type { MetricsCollectors } from "./_metrics.ts";
import { redactUrl } from "../routes/mod.ts";

/** `/certs` entry. */
export interface ServedCertInfo {
  instance: string;
  serial: string;
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
  fingerprint256: string;
  dns_names: string[];
  uris: string[];
  identity?: unknown;
  loaded_at: string;
  trusted_client_cas?: string[];
}

/**
 * Readiness of every listener (bound, app port accepts TCP) and of every
 * instance's certificate (not expired).
 */
export interface Readiness {
  ok: boolean;
  certificates: Array<{
    instance: string;
    serial: string;
    not_after: string;
    valid: boolean;
    reason?: string;
  }>;
  checks: Array<{
    instance: string;
    listener: string;
    bound: boolean;
    port: number;
    app: string;
    app_accepts: boolean;
  }>;
}

/** What an instance serves now. */
export function certInfo(i: InstanceRuntime): ServedCertInfo {
  const c = i.credentials;
  const out: ServedCertInfo = {
    instance: i.id,
    serial: c.serial,
    subject: c.subject,
    issuer: c.issuer,
    not_before: c.notBefore.toISOString(),
    not_after: c.notAfter.toISOString(),
    fingerprint256: c.fingerprint256,
    dns_names: c.dnsNames,
    uris: c.uris,
    identity: c.identity,
    loaded_at: new Date(c.loadedAt).toISOString(),
  };
  if (i.trust) out.trusted_client_cas = i.trust.fingerprints;
  return out;
}

/** Checks every listener is bound and every app port accepts TCP. */
export async function readiness(
  instances: InstanceRuntime[],
  config: ProxySection,
): Promise<Readiness> {
  const checks = await Promise.all(
    instances.flatMap((i) =>
      i.listeners.map(async (l) => {
        const bound = l.port > 0 && !l.closed;
        const app = await probe(
          l.options.app.hostname,
          l.options.app.port,
          Math.max(config.connect_timeout, 100),
        );
        return {
          instance: i.id,
          listener: l.options.name,
          bound,
          port: l.port,
          app: formatAddress(l.options.app),
          app_accepts: app,
        };
      })
    ),
  );
  const certificates = instances.map((i) => {
    const reason = i.expiry();
    return {
      instance: i.id,
      serial: i.credentials.serial,
      not_after: i.credentials.notAfter.toISOString(),
      valid: reason === undefined,
      ...(reason !== undefined ? { reason } : {}),
    };
  });
  return {
    ok: checks.every((c) => c.bound && c.app_accepts) &&
      certificates.every((c) => c.valid),
    certificates,
    checks,
  };
}

function probe(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** The effective config: durations as text, bound ports, no secrets. */
export function configDump(config: ProxySection, instances: InstanceRuntime[]) {
  return {
    admin_listen: formatAddress(config.admin_listen),
    min_tls_version: config.min_tls_version,
    connect_timeout: formatDuration(config.connect_timeout),
    handshake_timeout: formatDuration(config.handshake_timeout),
    idle_timeout: formatDuration(config.idle_timeout),
    drain_timeout: formatDuration(config.drain_timeout),
    reload_poll_interval: formatDuration(config.reload_poll_interval),
    reload_debounce: formatDuration(config.reload_debounce),
    cipher_suites:
      "not configurable: Deno's node:tls ignores the ciphers option; TLS 1.3 suites and AEAD TLS 1.2 suites of the runtime apply",
    instances: config.instances.map((ic, idx) => ({
      id: instances[idx]?.id ?? ic.id,
      credentials_dir: ic.credentials_dir,
      cert_file: ic.cert_file,
      key_file: ic.key_file,
      mode: ic.mode,
      trusted_client_cas: ic.trusted_client_cas,
      allowed_client_sans: ic.allowed_client_sans,
      listeners: ic.listeners.map((l, j) => ({
        name: instances[idx]?.listeners[j]?.options.name ?? l.name,
        listen: formatAddress(l.listen),
        bound_port: instances[idx]?.listeners[j]?.port,
        app: formatAddress(l.app),
      })),
      register: ic.register && {
        routes: ic.register.routes,
        host: ic.register.host,
        tls_listener: ic.register.tls_listener,
        advertised_tls_port: ic.register.advertised_tls_port,
        app: ic.register.app,
        instance_index: ic.register.instance_index,
        tags: ic.register.tags,
        interval: formatDuration(ic.register.interval),
        jitter: ic.register.jitter,
        routers: ic.register.routers.map((r) => ({
          url: redactUrl(r.url),
          token_file: r.token_file,
          ca_bundle: r.ca_bundle,
        })),
        nats: ic.register.nats && {
          servers: ic.register.nats.servers.map(redactUrl),
          tls_ca: ic.register.nats.tls_ca,
        },
      },
    })),
  };
}

/** The scrape-time metric providers, read from the live instances. */
export function metricCollectors(
  instances: readonly InstanceRuntime[],
): MetricsCollectors {
  const perListener = <T>(
    fn: (inst: InstanceRuntime, l: InstanceRuntime["listeners"][number]) => T[],
  ) => instances.flatMap((i) => i.listeners.flatMap((l) => fn(i, l)));
  return {
    active: () =>
      perListener((i, l) => [
        [{ instance: i.id, listener: l.options.name }, l.active],
      ]),
    liveBytes: () =>
      perListener((i, l) => {
        const b = l.liveBytes();
        const base = { instance: i.id, listener: l.options.name };
        return [
          [{ ...base, direction: "client_to_app" }, b.in],
          [{ ...base, direction: "app_to_client" }, b.out],
        ];
      }),
    certs: () =>
      instances.map((i) => ({
        instance: i.id,
        serial: i.credentials.serial,
        notAfter: i.credentials.notAfter,
        notBefore: i.credentials.notBefore,
      })),
  };
}

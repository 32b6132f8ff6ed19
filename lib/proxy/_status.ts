/**
 * The proxy's `/status.json` (and page), taken from what the admin API
 * already reads: `/stats`, `/certs`, the config dump, and the registration
 * timestamps of `/metrics`.
 * @module
 */
import type {
  InstanceStatus,
  ProxyStatus,
  RegistrationStatus,
} from "../status/mod.ts";
import type { ListenerStats } from "./_listener.ts";
import type { configDump, ServedCertInfo } from "./_views.ts";

/** What the snapshot is taken from (the admin view's readings). */
export interface ProxyStatusSource {
  stats: {
    instances: Array<{ id: string; mode: string; listeners: ListenerStats[] }>;
  };
  certs: ServedCertInfo[];
  config: Pick<ReturnType<typeof configDump>, "instances">;
  /** The proxy's Prometheus text (for the registration timestamps). */
  metrics: string;
}

const REGISTRATION_SERIES =
  "sigil_proxy_registration_last_result_timestamp_seconds";

/**
 * Takes the snapshot.
 *
 * @param src The admin view's readings.
 * @param now Clock ms.
 * @example
 * ```ts
 * import { proxyStatus } from "./_status.ts";
 * const s = proxyStatus({ stats: { instances: [] }, certs: [], config: { instances: [] }, metrics: "" }, 0);
 * console.assert(s.role === "proxy" && s.instances.length === 0);
 * ```
 */
export function proxyStatus(src: ProxyStatusSource, now: number): ProxyStatus {
  const times = registrationTimes(src.metrics);
  const instances: InstanceStatus[] = src.stats.instances.map((i) => {
    const cert = src.certs.find((c) => c.instance === i.id);
    const cfg = src.config.instances.find((c) => c.id === i.id);
    const targets = [
      ...(cfg?.register?.routers.map((r) => r.url) ?? []),
      ...(cfg?.register?.nats ? ["nats"] : []),
    ];
    return {
      id: i.id,
      mode: i.mode,
      certificate: {
        role: "served",
        serial: cert?.serial ?? "",
        subject: cert?.subject ?? "",
        identity: identityOf(cert),
        not_after: cert?.not_after ?? "",
        time_left_ms: cert ? Date.parse(cert.not_after) - now : 0,
      },
      listeners: i.listeners.map((l) => ({
        name: l.name,
        listen: l.port > 0 ? l.listen.replace(/:\d+$/, `:${l.port}`) : l.listen,
        app: l.app,
        active: l.active,
        total: l.total,
        bytes_client_to_app: l.bytes_client_to_app,
        bytes_app_to_client: l.bytes_app_to_client,
        refusals: refusals(l),
      })),
      registrations: targets.map((t) =>
        registration(t, times.get(`${i.id}\n${t}`))
      ),
    };
  });
  return { role: "proxy", time: new Date(now).toISOString(), instances };
}

function identityOf(cert: ServedCertInfo | undefined): string {
  if (!cert) return "";
  const id = cert.identity as { instanceId?: unknown } | undefined;
  if (typeof id?.instanceId === "string") return id.instanceId;
  return cert.uris[0] ?? cert.dns_names[0] ?? "";
}

function refusals(l: ListenerStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [why, n] of Object.entries(l.handshake_failures)) {
    if (n > 0) out[why] = n;
  }
  for (const [why, n] of Object.entries(l.app_connect_failures)) {
    if (n > 0) out[`app ${why}`] = n;
  }
  if (l.idle_timeouts > 0) out["idle timeout"] = l.idle_timeouts;
  return out;
}

function registration(
  target: string,
  t: { ok?: number; error?: number } | undefined,
): RegistrationStatus {
  const iso = (s: number | undefined) =>
    s === undefined ? "" : new Date(s * 1000).toISOString();
  const state = t?.ok === undefined && t?.error === undefined
    ? "pending"
    : (t.error ?? -1) >= (t.ok ?? -1)
    ? "failing"
    : "registered";
  return {
    target,
    state,
    last_ok: iso(t?.ok),
    last_error: t?.error === undefined
      ? ""
      : `failed at ${iso(t.error)} (see the proxy log: routes-register-failed)`,
  };
}

/**
 * The registrar's timestamps from the proxy's own exposition text, by
 * `instance\ntarget` (label values unescaped as the format defines).
 */
function registrationTimes(
  text: string,
): Map<string, { ok?: number; error?: number }> {
  const out = new Map<string, { ok?: number; error?: number }>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(REGISTRATION_SERIES + "{")) continue;
    const close = line.lastIndexOf("} ");
    if (close < 0) continue;
    const labels: Record<string, string> = {};
    const body = line.slice(REGISTRATION_SERIES.length + 1, close);
    for (const m of body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]!] = m[2]!.replace(
        /\\(.)/g,
        (_, c: string) => c === "n" ? "\n" : c,
      );
    }
    const value = Number(line.slice(close + 2));
    const { instance, target, result } = labels;
    if (instance === undefined || target === undefined) continue;
    if (!Number.isFinite(value)) continue;
    const key = `${instance}\n${target}`;
    const t = out.get(key) ?? {};
    if (result === "ok") t.ok = value;
    else if (result === "error") t.error = value;
    out.set(key, t);
  }
  return out;
}

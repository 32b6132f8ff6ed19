/**
 * The router's `/status.json` (and page): every route with its endpoints and
 * their state, recent prunes, NATS, and the router's own certificates.
 * @module
 */
import { certSummary } from "../status/mod.ts";
import type {
  CertSummary,
  EndpointState,
  EndpointStatus,
  RouterStatus,
  RouteStatus,
} from "../status/mod.ts";
import type { RouteEvents } from "./_events.ts";
import type { Endpoint } from "./_pool.ts";
import type { Registry } from "./_registry.ts";

/** What the snapshot is taken from. */
export interface RouterStatusSource {
  registry: Registry;
  events: RouteEvents;
  /** Whether stale TLS endpoints get a liveness probe. */
  probeStaleTls: boolean;
  /** Whether the router presents a client certificate to TLS backends. */
  mtls: () => boolean;
  nats: () => RouterStatus["nats"];
  /** The router's certificates as PEM, by what they are for. */
  certificates: () => Array<{ role: string; pem: string | undefined }>;
}

/**
 * Takes the snapshot.
 *
 * @param src Registry, events and settings.
 * @param host Only routes whose name contains this (case-insensitive); `""`: all.
 * @param now Clock ms.
 */
export function routerStatus(
  src: RouterStatusSource,
  host: string,
  now: number,
): RouterStatus {
  const filter = host.trim().toLowerCase();
  const mtls = src.mtls();
  const routes = new Map<string, RouteStatus>();
  for (const pool of src.registry.pools()) {
    if (!pool.uri.includes(filter)) continue;
    routes.set(pool.uri, {
      uri: pool.uri,
      endpoints: pool.endpoints.map((ep) => endpoint(src, ep, now, mtls)),
    });
  }
  const events = src.events.recent().filter((e) => e.route.includes(filter));
  // Recently pruned endpoints stay visible under their route.
  const seen = new Set<string>();
  for (const e of events) {
    const key = `${e.route} ${e.backend}`;
    if (seen.has(key)) continue;
    seen.add(key);
    let r = routes.get(e.route);
    if (r?.endpoints.some((x) => x.address === e.backend)) continue;
    if (r === undefined) {
      routes.set(e.route, r = { uri: e.route, endpoints: [] });
    }
    r.endpoints.push({
      address: e.backend,
      instance_id: e.instance_id,
      app: e.app,
      index: "",
      tls: e.reason !== "stale",
      mtls: e.reason !== "stale" && mtls,
      last_heartbeat: "",
      heartbeat_age_ms: now - Date.parse(e.time),
      state: "pruned",
      inflight: 0,
      requests: 0,
      last_error: { time: e.time, kind: e.reason, detail: e.detail },
      tags: {},
    });
  }
  return {
    role: "router",
    time: new Date(now).toISOString(),
    host: filter,
    nats: src.nats(),
    routes: [...routes.values()].sort((a, b) => a.uri.localeCompare(b.uri)),
    events,
    certificates: certificates(src, now),
  };
}

function endpoint(
  src: RouterStatusSource,
  ep: Endpoint,
  now: number,
  mtls: boolean,
): EndpointStatus {
  const stale = now - ep.updatedAt > ep.staleMs;
  const state: EndpointState = ep.failedUntil > now
    ? "cooling down"
    : stale && !ep.tls
    ? "stale"
    : stale && src.probeStaleTls
    ? "probing"
    : "healthy";
  return {
    address: ep.key,
    instance_id: ep.instanceId,
    app: ep.app,
    index: ep.index,
    tls: ep.tls,
    mtls: ep.tls && mtls,
    last_heartbeat: new Date(ep.updatedAt).toISOString(),
    heartbeat_age_ms: now - ep.updatedAt,
    state,
    inflight: ep.inflight,
    requests: ep.requests,
    last_error: src.events.lastError(ep) ?? null,
    tags: { ...ep.tags },
  };
}

const parsed = new Map<string, CertSummary | undefined>();

function certificates(src: RouterStatusSource, now: number): CertSummary[] {
  const out: CertSummary[] = [];
  for (const { role, pem } of src.certificates()) {
    if (pem === undefined) continue;
    const k = `${role}\n${pem}`;
    if (!parsed.has(k)) {
      if (parsed.size > 32) parsed.clear();
      try {
        parsed.set(k, certSummary(role, pem, 0));
      } catch {
        parsed.set(k, undefined);
      }
    }
    const c = parsed.get(k);
    if (c) {
      out.push({ ...c, time_left_ms: Date.parse(c.not_after) - now });
    }
  }
  return out;
}

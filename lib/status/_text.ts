/**
 * Terminal tables for `sigil routes` and `sigil status`, made from the same
 * JSON the pages are made from. Every attacker-suppliable field goes through
 * {@linkcode printable} so it cannot move the cursor or recolour the terminal.
 * @module
 */
import { formatBytes, formatSpan, formatTable, printable } from "./_format.ts";
import type {
  CaStatus,
  CertSummary,
  IssuanceStatus,
  ProxyStatus,
  RoleStatus,
  RouterStatus,
} from "./_types.ts";

/** One endpoint of the router's `/routes` JSON (gorouter's shape). */
export interface RouteJsonEndpoint {
  address: string;
  tls: boolean;
  ttl: number;
  private_instance_id?: string;
  private_instance_index?: string;
  app?: string;
  [key: string]: unknown;
}

/** The router's `/routes` JSON: route → endpoints. */
export type RoutesJson = Record<string, RouteJsonEndpoint[]>;

/** Column headers of {@linkcode routesTable}. */
export const ROUTES_HEADERS = [
  "host",
  "endpoint",
  "instance",
  "app",
  "state",
  "heartbeat",
  "ttl",
];

const dash = (s: string | undefined) => s ? printable(s) : "-";

/**
 * The route table: one row per endpoint, joined with the status snapshot
 * (state, time since the last heartbeat) when the router serves one.
 *
 * @param routes `/routes` JSON.
 * @param status `/status.json`, or `undefined` (a router without it: gorouter).
 * @param options `ttl: false` leaves out the TTL column.
 * @example
 * ```ts
 * import { routesTable } from "./_text.ts";
 * const t = routesTable({ "a.example.com": [{ address: "10.0.0.1:61001", tls: true, ttl: 120 }] }, undefined);
 * console.assert(t.split("\n")[1]!.startsWith("a.example.com   10.0.0.1:61001"));
 * ```
 */
export function routesTable(
  routes: RoutesJson,
  status: RouterStatus | undefined,
  options: { ttl?: boolean } = {},
): string {
  const ttl = options.ttl ?? true;
  const rows: string[][] = [];
  for (const uri of Object.keys(routes).sort()) {
    const eps = [...(routes[uri] ?? [])].sort((a, b) =>
      a.address.localeCompare(b.address)
    );
    const known = status?.routes.find((r) => r.uri === uri);
    for (const ep of eps) {
      const s = known?.endpoints.find((e) => e.address === ep.address);
      rows.push([
        printable(uri),
        printable(ep.address),
        // gorouter's /routes shape has no app id; /status.json has it.
        dash(ep.private_instance_id ?? s?.instance_id),
        dash(ep.app ?? s?.app),
        s ? s.state : "-",
        s ? formatSpan(s.heartbeat_age_ms) : "-",
        ...(ttl ? [`${ep.ttl}s`] : []),
      ]);
    }
  }
  if (rows.length === 0) return "No routes.";
  return formatTable(ttl ? ROUTES_HEADERS : ROUTES_HEADERS.slice(0, -1), rows);
}

/** Keeps the routes whose name contains `host` (case-insensitive), like the page's filter. */
export function filterRoutes(routes: RoutesJson, host: string): RoutesJson {
  const f = host.trim().toLowerCase();
  if (f === "") return routes;
  return Object.fromEntries(
    Object.entries(routes).filter(([uri]) => uri.includes(f)),
  );
}

function certs(list: CertSummary[]): string {
  if (list.length === 0) return "none";
  return formatTable(
    ["for", "identity", "serial", "not after", "time left"],
    list.map((c) => [
      printable(c.role),
      printable(c.identity || c.subject),
      c.serial,
      c.not_after,
      c.time_left_ms < 0
        ? `expired ${formatSpan(-c.time_left_ms)} ago`
        : formatSpan(c.time_left_ms),
    ]),
  );
}

function ago(iso: string, now: number): string {
  return iso === "" ? "never" : `${formatSpan(now - Date.parse(iso))} ago`;
}

function router(s: RouterStatus): string {
  const now = Date.parse(s.time);
  const eps = s.routes.flatMap((r) => r.endpoints);
  const byState = new Map<string, number>();
  for (const e of eps) byState.set(e.state, (byState.get(e.state) ?? 0) + 1);
  const routes = Object.fromEntries(
    s.routes.map((r) => [
      r.uri,
      r.endpoints.map((e) => ({
        address: e.address,
        tls: e.tls,
        ttl: 0,
        private_instance_id: e.instance_id,
        app: e.app,
      })),
    ]),
  );
  const table = routesTable(routes, s, { ttl: false });
  return [
    `Role:       router`,
    `NATS:       ${
      s.nats.configured
        ? s.nats.connected ? "connected" : "DISCONNECTED"
        : "not configured"
    }`,
    `Routes:     ${s.routes.length} (${eps.length} endpoints: ${
      [...byState].map(([k, n]) => `${n} ${k}`).join(", ") || "none"
    })`,
    ``,
    s.routes.length === 0 ? "No routes." : table,
    ``,
    `Recent prunes:`,
    s.events.length === 0 ? "none" : formatTable(
      ["when", "reason", "route", "backend", "instance"],
      s.events.map((e) => [
        ago(e.time, now),
        printable(e.reason),
        printable(e.route),
        printable(e.backend),
        dash(e.instance_id),
      ]),
    ),
    ``,
    `Certificates:`,
    certs(s.certificates),
  ].join("\n");
}

function proxy(s: ProxyStatus): string {
  const now = Date.parse(s.time);
  const out = [`Role:       proxy`, `Instances:  ${s.instances.length}`];
  for (const i of s.instances) {
    out.push(
      ``,
      `Instance ${printable(i.id)} (${i.mode})`,
      certs([i.certificate]),
      ``,
      formatTable(
        ["listener", "listen", "app", "open", "total", "in", "out", "refusals"],
        i.listeners.map((l) => [
          printable(l.name),
          l.listen,
          l.app,
          String(l.active),
          String(l.total),
          formatBytes(l.bytes_client_to_app),
          formatBytes(l.bytes_app_to_client),
          Object.entries(l.refusals).map(([k, n]) => `${k}=${n}`).join(",") ||
          "none",
        ]),
      ),
    );
    if (i.registrations.length > 0) {
      out.push(
        ``,
        formatTable(
          ["registers with", "state", "last success", "last error"],
          i.registrations.map((r) => [
            printable(r.target),
            r.state,
            ago(r.last_ok, now),
            dash(r.last_error),
          ]),
        ),
      );
    }
  }
  return out.join("\n");
}

function ledger(rows: IssuanceStatus[], now: number, issued: boolean) {
  if (rows.length === 0) return "none";
  return formatTable(
    issued
      ? ["when", "instance", "app", "caller", "serial", "not after"]
      : ["when", "instance", "caller", "reason"],
    rows.map((r) =>
      issued
        ? [
          ago(r.time, now),
          dash(r.instance_id),
          dash(r.app),
          dash(r.caller),
          r.serial,
          r.not_after,
        ]
        : [
          ago(r.time, now),
          dash(r.instance_id),
          dash(r.caller),
          dash(r.reason),
        ]
    ),
  );
}

function ca(s: CaStatus): string {
  const now = Date.parse(s.time);
  return [
    `Role:         ca`,
    `Trust domain: ${printable(s.trust_domain)}`,
    ``,
    `Issuers:`,
    certs(s.issuers),
    ``,
    `Recent issuances:`,
    ledger(s.issuances, now, true),
    ``,
    `Recent refusals:`,
    ledger(s.refusals, now, false),
    ``,
    `Revocations: ${
      s.revocations === null
        ? "not kept by this CA"
        : s.revocations.length === 0
        ? "none"
        : s.revocations.map((r) => r.serial).join(", ")
    }`,
  ].join("\n");
}

/**
 * The summary `sigil status` prints for any role's `/status.json`.
 *
 * @example
 * ```ts
 * import { statusText } from "./_text.ts";
 * const t = statusText({ role: "proxy", time: new Date(0).toISOString(), instances: [] });
 * console.assert(t.startsWith("Role:       proxy"));
 * ```
 */
export function statusText(s: RoleStatus): string {
  return s.role === "router"
    ? router(s)
    : s.role === "proxy"
    ? proxy(s)
    : ca(s);
}

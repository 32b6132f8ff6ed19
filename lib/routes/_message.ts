/**
 * Cloud Foundry's route registration message (`router.register` /
 * `router.unregister`), shared by the HTTP registration API and NATS.
 * @module
 */
import { isIP } from "node:net";
import { z } from "zod";

const LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?";
/** A hostname, or a wildcard one: `*.` then a hostname. */
const HOSTNAME = new RegExp(
  `^(?=.{1,253}$)(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`,
);

/**
 * Checks one route URI: a hostname (or `*.` + hostname) with an optional
 * /path, no scheme, port, fragment or spaces.
 *
 * @returns Why it cannot be routed, or `undefined` when it can.
 */
export function routeUriProblem(uri: string): string | undefined {
  const slash = uri.indexOf("/");
  const host = slash === -1 ? uri : uri.slice(0, slash);
  if (!HOSTNAME.test(host) || /[\s#]/.test(uri)) {
    return "must be a hostname with an optional /path (no scheme, port or spaces)";
  }
  return undefined;
}

/**
 * A route URI as gorouter keys it (`route/uris.go` `RouteKey`): lowercased,
 * the query dropped, trailing slashes trimmed.
 *
 * @example
 * ```ts
 * import { routeKey } from "./_message.ts";
 * console.assert(routeKey("Hello.Example.com/API/?x=1") === "hello.example.com/api");
 * ```
 */
export function routeKey(uri: string): string {
  let key = uri.toLowerCase();
  const q = key.indexOf("?");
  if (q !== -1) key = key.slice(0, q);
  while (key.endsWith("/")) key = key.slice(0, -1);
  return key;
}

/** A route URI: hostname with optional path prefix, e.g. `hello.example.com/api`. */
export const RouteUri = z.string().refine((u) => !routeUriProblem(u), {
  message:
    "must be a hostname with an optional /path (no scheme, port or spaces)",
});

const Port = z.number().int().min(0).max(65535);

/** Load-balancing algorithms gorouter knows (`config.LoadBalancingStrategies`). */
export const LOAD_BALANCING = ["round-robin", "least-connection"] as const;

/** Protocols an endpoint may speak (gorouter: anything else is `http1`). */
export const PROTOCOLS = ["http1", "http2"] as const;

/**
 * JSON `null` reads as absent, as Go's `encoding/json` reads it: top-level
 * and `options` keys whose value is `null` are dropped before validation.
 */
function dropNulls(v: unknown): unknown {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x !== null) out[k] = k === "options" ? dropNulls(x) : x;
  }
  return out;
}

/**
 * The registration message, as gorouter's `RegistryMessage` reads it. Unknown
 * fields are ignored (other emitters add their own); a field of the wrong
 * JSON type refuses the message, as `json.Unmarshal` does in gorouter.
 */
export const RegistryMessage = z.preprocess(
  dropNulls,
  z.object({
    host: z.string().min(1, "host is required").refine(isEndpointHost, {
      message: "must be an IP address or a DNS name",
    }),
    port: Port.optional(),
    tls_port: Port.optional(),
    uris: z.array(z.string()).min(1, "uris must list at least one route"),
    app: z.string().optional(),
    private_instance_id: z.string().optional(),
    private_instance_index: z.string().optional(),
    server_cert_domain_san: z.string().optional(),
    tags: z.record(z.string(), z.string()).optional(),
    stale_threshold_in_seconds: z.number().int().optional(),
    isolation_segment: z.string().optional(),
    route_service_url: z.string().optional(),
    endpoint_updated_at_ns: z.number().optional(),
    protocol: z.string().optional(),
    availability_zone: z.string().optional(),
    options: z.object({ loadbalancing: z.string().optional() }).optional(),
  }).refine((m) => (m.tls_port ?? 0) > 0 || (m.port ?? 0) > 0, {
    message: "either port or tls_port must be a non-zero port",
    path: ["port"],
  }).refine(
    (m) => m.route_service_url === undefined || isHttpsUrl(m.route_service_url),
    {
      // gorouter (`mbus/subscriber.go` ValidateMessage) refuses the same, but
      // only checks the "https" prefix.
      message: "route_service_url must be an https:// URL",
      path: ["route_service_url"],
    },
  ),
);
/** A validated registration message. */
export type RegistryMessage = z.output<typeof RegistryMessage>;

/** An IPv4/IPv6 address or a DNS name (no port, spaces or control bytes). */
function isEndpointHost(host: string): boolean {
  return isIP(host) !== 0 || (HOSTNAME.test(host) && !host.startsWith("*"));
}

function isHttpsUrl(url: string): boolean {
  try {
    return new URL(url).protocol === "https:";
  } catch {
    return false;
  }
}

/** A field of an accepted message that was ignored or replaced by a default. */
export interface IgnoredField {
  /** e.g. `uris.1`, `protocol`. */
  field: string;
  /** What was done, e.g. `not a hostname: route ignored`. */
  detail: string;
}

/** The `router.start` / `router.greet` payload. */
export interface RouterStartMessage {
  id: string;
  hosts: string[];
  minimumRegisterIntervalInSeconds: number;
  pruneThresholdInSeconds: number;
}

/** NATS subjects (Cloud Foundry's names). */
export const SUBJECTS = {
  register: "router.register",
  unregister: "router.unregister",
  start: "router.start",
  greet: "router.greet",
} as const;

/** Why a message was rejected; `reason` is a short stable key for metrics. */
export class RegistryMessageError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = "RegistryMessageError";
    this.reason = reason;
  }
}

const utf8 = new TextDecoder();

/** Issues listed in a refusal; the rest are counted. */
const MAX_ISSUES = 3;

/**
 * A field path for a refusal: sender-chosen keys (of `tags`) are quoted and
 * cut, so a key cannot grow the line or forge text in it.
 */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((k) =>
    typeof k === "number" || /^[A-Za-z0-9_]{1,40}$/.test(String(k))
      ? String(k)
      : JSON.stringify(String(k).slice(0, 40))
  ).join(".");
}

/** JSON from text or bytes; a `RegistryMessageError` names `what` otherwise. */
function decodeJson(data: string | Uint8Array, what: string): unknown {
  const text = typeof data === "string" ? data : utf8.decode(data);
  try {
    return JSON.parse(text);
  } catch {
    throw new RegistryMessageError(
      "invalid-json",
      `Cannot read ${what}: not valid JSON`,
    );
  }
}

/**
 * Parses and validates a registration message from raw bytes or text, with
 * gorouter's leniency (`mbus/subscriber.go`, `registry/registry.go`): a
 * route URI that cannot be routed is dropped (the others stay), a query is
 * cut from a URI, a stale threshold of 0 or less, an unknown `protocol` and
 * an unknown `options.loadbalancing` fall back to the defaults. Each of those
 * is reported to `onIgnored`. Only what gorouter refuses, plus a message with
 * nothing routable left, is refused.
 *
 * @param data JSON text or bytes.
 * @param onIgnored Told about each field that was dropped or defaulted.
 * @returns The validated message, normalised.
 * @throws {RegistryMessageError} `reason` is `invalid-json` or `invalid-message`;
 *   the message names the offending field.
 *
 * @example
 * ```ts
 * import { parseRegistryMessage } from "./_message.ts";
 * const m = parseRegistryMessage('{"host":"10.0.0.5","tls_port":61001,"uris":["hello.example.com"],"server_cert_domain_san":"a1"}');
 * console.assert(m.tls_port === 61001);
 * ```
 */
export function parseRegistryMessage(
  data: string | Uint8Array,
  onIgnored?: (ignored: IgnoredField) => void,
): RegistryMessage {
  const raw = decodeJson(data, "registration message");
  const r = RegistryMessage.safeParse(raw);
  if (!r.success) {
    // Bounded: a message with 20,000 bad tags is refused in one short line.
    const issues = r.error.issues;
    const detail = issues.slice(0, MAX_ISSUES)
      .map((i) => `${fieldPath(i.path) || "(message)"}: ${i.message}`)
      .join("; ") +
      (issues.length > MAX_ISSUES
        ? ` (and ${issues.length - MAX_ISSUES} more)`
        : "");
    throw new RegistryMessageError(
      "invalid-message",
      `Cannot accept registration message: ${detail}`,
    );
  }
  const m = r.data;
  const ignore = (field: string, detail: string) =>
    onIgnored?.({ field, detail });
  const uris: string[] = [];
  for (const [i, uri] of m.uris.entries()) {
    const q = uri.indexOf("?");
    const routable = q === -1 ? uri : uri.slice(0, q);
    const problem = routeUriProblem(routable);
    if (problem) ignore(`uris.${i}`, `${problem}: route ignored`);
    else {
      if (q !== -1) ignore(`uris.${i}`, "query cut from the route");
      uris.push(routable);
    }
  }
  if (uris.length === 0) {
    throw new RegistryMessageError(
      "invalid-message",
      "Cannot accept registration message: uris: no routable route (each must be a hostname with an optional /path)",
    );
  }
  m.uris = uris;
  const stale = m.stale_threshold_in_seconds;
  if (stale !== undefined && stale <= 0) {
    // 0 means "unset" to gorouter; a negative one would prune at once there.
    if (stale < 0) {
      ignore("stale_threshold_in_seconds", "negative: default used");
    }
    delete m.stale_threshold_in_seconds;
  }
  if (
    m.protocol !== undefined &&
    !(PROTOCOLS as readonly string[]).includes(m.protocol)
  ) {
    ignore("protocol", `unknown protocol: http1 used`);
    m.protocol = "http1";
  }
  const lb = m.options?.loadbalancing;
  if (lb !== undefined && !(LOAD_BALANCING as readonly string[]).includes(lb)) {
    ignore("options.loadbalancing", "unknown algorithm: the default used");
    delete m.options!.loadbalancing;
  }
  return m;
}

/**
 * Where a proxy sends its registrations: the router's HTTP API or NATS.
 * Implementations: `HttpRouteSink` (lib/proxy) and `NatsRouteBus` (lib/routes).
 */
export interface RouteSink {
  /** Publishes one `router.register` message. Rejects when it cannot be delivered. */
  register(message: RegistryMessage): Promise<void>;
  /** Publishes one `router.unregister` message. */
  unregister(message: RegistryMessage): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
}

/**
 * Reads a `router.start` / `router.greet` payload leniently: `id` must be a
 * string; missing or invalid numbers fall back to Cloud Foundry's defaults
 * (20 s register interval, 120 s prune threshold).
 *
 * @param data JSON text or bytes.
 * @returns The payload, with defaults applied.
 * @throws {RegistryMessageError} `reason` is `invalid-json` or `invalid-start`.
 *
 * @example
 * ```ts
 * import { parseRouterStartMessage } from "./_message.ts";
 * const m = parseRouterStartMessage('{"id":"0-a1","hosts":["10.0.0.1"]}');
 * console.assert(m.minimumRegisterIntervalInSeconds === 20);
 * ```
 */
export function parseRouterStartMessage(
  data: string | Uint8Array,
): RouterStartMessage {
  const raw = decodeJson(data, "router start message");
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new RegistryMessageError(
      "invalid-start",
      "Cannot read router start message: not a JSON object",
    );
  }
  const o = raw as Record<string, unknown>;
  if (typeof o.id !== "string" || o.id === "") {
    throw new RegistryMessageError(
      "invalid-start",
      "Cannot read router start message: id must be a non-empty string",
    );
  }
  const positive = (v: unknown, d: number) =>
    typeof v === "number" && Number.isFinite(v) && v > 0 ? v : d;
  return {
    id: o.id,
    hosts: Array.isArray(o.hosts)
      ? o.hosts.filter((h): h is string => typeof h === "string")
      : [],
    minimumRegisterIntervalInSeconds: positive(
      o.minimumRegisterIntervalInSeconds,
      20,
    ),
    pruneThresholdInSeconds: positive(o.pruneThresholdInSeconds, 120),
  };
}

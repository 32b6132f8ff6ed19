/**
 * Cloud Foundry's route registration message (`router.register` /
 * `router.unregister`), shared by the HTTP registration API and NATS.
 * @module
 */
import { z } from "zod";

const HOSTNAME =
  /^(?=.{1,253}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$/;

/** A route URI: hostname with optional path prefix, e.g. `hello.example.com/api`. */
export const RouteUri = z.string().refine((u) => {
  const slash = u.indexOf("/");
  const host = slash === -1 ? u : u.slice(0, slash);
  return HOSTNAME.test(host) && !/[\s?#]/.test(u);
}, {
  message:
    "must be a hostname with an optional /path (no scheme, port, query or spaces)",
});

const Port = z.number().int().min(0).max(65535);

/**
 * The registration message, as gorouter's `RegistryMessage`. Unknown fields are
 * ignored (other emitters add their own), known ones are validated.
 */
export const RegistryMessage = z.object({
  host: z.string().min(1, "host is required"),
  port: Port.optional(),
  tls_port: Port.optional(),
  uris: z.array(RouteUri).min(1, "uris must list at least one route"),
  app: z.string().optional(),
  private_instance_id: z.string().optional(),
  private_instance_index: z.string().optional(),
  server_cert_domain_san: z.string().optional(),
  tags: z.record(z.string(), z.string()).optional(),
  stale_threshold_in_seconds: z.number().int().min(0).optional(),
  isolation_segment: z.string().optional(),
  route_service_url: z.string().startsWith(
    "https://",
    "route_service_url must be https",
  )
    .optional(),
  endpoint_updated_at_ns: z.number().optional(),
  protocol: z.enum(["http1", "http2"]).optional(),
  availability_zone: z.string().optional(),
  options: z.object({
    loadbalancing: z.enum(["round-robin", "least-connection"]).optional(),
  }).optional(),
}).refine((m) => (m.tls_port ?? 0) > 0 || (m.port ?? 0) > 0, {
  message: "either port or tls_port must be a non-zero port",
  path: ["port"],
}).refine((m) => !((m.tls_port ?? 0) > 0) || !!m.server_cert_domain_san, {
  message: "server_cert_domain_san (the instance id) is required with tls_port",
  path: ["server_cert_domain_san"],
}).refine((m) => m.route_service_url === undefined, {
  // Accepting it would route straight to the app, around the route service
  // (often an auth proxy or a WAF) the route names.
  message:
    "route services are not supported by sigil router; register the route without route_service_url",
  path: ["route_service_url"],
});
/** A validated registration message. */
export type RegistryMessage = z.output<typeof RegistryMessage>;

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
 * Parses and validates a registration message from raw bytes or text.
 *
 * @param data JSON text or bytes.
 * @returns The validated message.
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
): RegistryMessage {
  const raw = decodeJson(data, "registration message");
  const r = RegistryMessage.safeParse(raw);
  if (!r.success) {
    const detail = r.error.issues
      .map((i) => `${i.path.join(".") || "(message)"}: ${i.message}`)
      .join("; ");
    throw new RegistryMessageError(
      "invalid-message",
      `Cannot accept registration message: ${detail}`,
    );
  }
  return r.data;
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

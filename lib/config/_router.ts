/** The `router` section: `sigil router`. @module */
import { z } from "zod";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../token/mod.ts";
import {
  Address,
  Duration,
  FilePath,
  isLoopback,
  LogLevel,
  safeJwksUrl,
} from "./_common.ts";
import { CrlSource } from "./_crl.ts";

/** Load-balancing algorithms (Cloud Foundry's names). */
export const BalancingAlgorithm = z.enum(["round-robin", "least-connection"]);

/** How the router reaches TLS backends. */
const RouterBackends = z.strictObject({
  /**
   * `tls`: verify the backend's certificate names the registered instance id.
   * `mtls`: additionally present `cert`/`key` as a client certificate.
   */
  mode: z.enum(["tls", "mtls"]).default("tls"),
  /** PEM bundle trusted for backend certificates (the instance-identity root). */
  ca: FilePath.optional(),
  /** Client certificate chain (PEM) presented to backends in `mtls` mode. */
  cert: FilePath.optional(),
  /** Client private key (PEM) for `cert`. */
  key: FilePath.optional(),
  /** Endpoints tried per request, capped by the pool size. */
  max_attempts: z.number().int().min(1).default(3),
  /** Concurrent requests per endpoint; beyond it the endpoint is skipped (503 when all are full). */
  max_conns: z.number().int().min(1).default(500),
  /** Idle keep-alive connections kept per endpoint (0 disables keep-alive). */
  max_idle_conns: z.number().int().min(0).default(100),
  /** How long an idle keep-alive connection is kept. */
  idle_timeout: Duration.prefault("90s"),
  /**
   * Longest life of a backend connection ("0s": no limit). A TLS connection
   * carries no request past the notAfter of the certificate that
   * authenticated it either way.
   */
  max_conn_age: Duration.prefault("0s"),
  /** TCP connect timeout. */
  dial_timeout: Duration.prefault("5s"),
  /** TLS handshake timeout (after the TCP connection is up). */
  tls_handshake_timeout: Duration.prefault("10s"),
  /** How long a plain endpoint that failed is skipped. */
  failure_cooldown: Duration.prefault("30s"),
  /**
   * The CA's CRL: a TLS backend whose certificate it lists fails the
   * handshake (526, endpoint pruned). Off when absent.
   */
  crl: CrlSource.optional(),
}).refine((b) => b.mode !== "mtls" || (!!b.cert && !!b.key), {
  message: "mode mtls needs backends.cert and backends.key",
  path: ["cert"],
}).refine((b) => !!b.cert === !!b.key, {
  message: "backends.cert and backends.key go together",
  path: ["key"],
});

/**
 * How the router reaches route services (gorouter's `route_services`
 * block, plus its top-level `skip_ssl_validation`, which only concerns
 * route services here; `ca` plays `ca_certs`).
 */
const RouterRouteServices = z.strictObject({
  /** PEM bundle trusted for route-service certificates, besides the system store. */
  ca: FilePath.optional(),
  /** Accept any route-service certificate (development only). */
  skip_ssl_validation: z.boolean().default(false),
  /** Attempts per request when the route service cannot be reached. */
  max_attempts: z.number().int().min(1).default(3),
  /** Client certificate chain (PEM) presented to route services that ask. */
  cert: FilePath.optional(),
  /** Private key (PEM) for `cert`. */
  key: FilePath.optional(),
}).refine((r) => !!r.cert === !!r.key, {
  message: "route_services.cert and route_services.key go together",
  path: ["key"],
});

/** The registration API listener. */
const RouterApi = z.strictObject({
  /** Serve the registration API at all. */
  enabled: z.boolean().default(true),
  /** Listen address of the API (keep it private). */
  listen: Address.prefault("127.0.0.1:8082"),
  /**
   * Certificate chain (PEM) for serving the API over HTTPS. Set it (with
   * `key`) whenever proxies on other hosts send their bearer tokens here.
   * Plain HTTP when absent.
   */
  cert: FilePath.optional(),
  /** Private key (PEM) for `cert`. */
  key: FilePath.optional(),
  /**
   * The CA's JWKS URL, e.g. `https://ca.internal:8443/v1/jwks.json`, or a
   * list of CA replicas' (tried in turn); must be https unless its host is
   * loopback (127.x, ::1, localhost).
   */
  jwks_url: z.union([z.url(), z.array(z.url()).min(1)]).optional(),
  /** PEM bundle trusted when fetching `jwks_url` over HTTPS. */
  ca_bundle: FilePath.optional(),
  /** Alternatively, a token-verification public key file (JWK JSON or PEM SPKI). */
  public_key_file: FilePath.optional(),
  /** Required `iss` claim. */
  issuer: z.string().min(1).default(TOKEN_ISSUER),
  /** Required `aud` claim. */
  audience: z.string().min(1).default(TOKEN_AUDIENCE),
  /** Largest accepted request body in bytes. */
  max_body_bytes: z.number().int().positive().default(65536),
  /**
   * Whether `/routes`, `/metrics` and `/status` need a bearer token with
   * scope `routes.read`. Default: yes unless `listen` is loopback; it cannot
   * be turned off on a listener that is not loopback.
   */
  read_token_required: z.boolean().optional(),
}).refine(
  (a) => !a.enabled || !!a.jwks_url !== !!a.public_key_file,
  {
    message:
      "set exactly one of api.jwks_url or api.public_key_file (or api.enabled: false)",
    path: ["jwks_url"],
  },
).refine((a) => !!a.cert === !!a.key, {
  message: "api.cert and api.key go together",
  path: ["key"],
}).refine((a) => [a.jwks_url ?? []].flat().every(safeJwksUrl), {
  message:
    "must be an https:// URL unless its host is loopback (127.x, ::1, localhost): keys fetched over plain http can be swapped in transit",
  path: ["jwks_url"],
}).refine(
  (a) => a.read_token_required !== false || isLoopback(a.listen.hostname),
  {
    message:
      "cannot be false on a listener that is not loopback: the route table names every backend; send a routes.read token ('sigil ca token --scope routes.read')",
    path: ["read_token_required"],
  },
);

/**
 * Whether the router API's `/routes`, `/metrics` and `/status` need a
 * `routes.read` token: `api.read_token_required`, else whether the listener
 * is not loopback.
 *
 * @example
 * ```ts
 * import { readTokenRequired, RouterSection } from "./_router.ts";
 * const r = RouterSection.parse({ api: { listen: "0.0.0.0:8082", public_key_file: "/k" } });
 * console.assert(readTokenRequired(r.api));
 * ```
 */
export function readTokenRequired(
  api: { listen: Address; read_token_required?: boolean | undefined },
): boolean {
  return api.read_token_required ?? !isLoopback(api.listen.hostname);
}

/** NATS route bus (for fleets with several routers). */
const RouterNats = z.strictObject({
  /**
   * NATS server URLs, e.g. `nats://10.0.0.2:4222` (or `tls://...`).
   * Credentials go in the URL (`nats://user:pass@host:4222`); logs show
   * them redacted (`nats://***@host:4222`).
   */
  servers: z.array(z.string().min(1)).min(1),
  /**
   * PEM bundle trusted for the NATS servers' certificates; setting it turns
   * on TLS to NATS (the server must have TLS enabled). Plain TCP when absent.
   */
  tls_ca: FilePath.optional(),
  /** Skip pruning while NATS is disconnected (registrations cannot arrive). */
  suspend_pruning_if_nats_unavailable: z.boolean().default(true),
});

/** Optional HTTPS front listener. */
const RouterHttps = z.strictObject({
  /** Listen address for HTTPS clients. */
  listen: Address.prefault("0.0.0.0:8443"),
  /** Certificate chain (PEM) served to clients. */
  cert: FilePath,
  /** Private key (PEM) for `cert`. */
  key: FilePath,
});

/** Access log destination. */
const RouterAccessLog = z.strictObject({
  /** Write one JSON line per request. */
  enabled: z.boolean().default(true),
  /** File to append to; stdout when absent. */
  file: FilePath.optional(),
});

/** Settings of `sigil router`. */
export const RouterSection = z.strictObject({
  /** Plain-HTTP listen address for client traffic. */
  listen: Address.prefault("0.0.0.0:8080"),
  /**
   * Set SO_REUSEPORT so several `sigil router` processes can share one port
   * (the kernel spreads connections across them; one process per core).
   * Deno 2.9 needs `--unstable-net` for this; `deno.json`, the `sigil` task and
   * `deploy/sigil-launcher.sh` provide it.
   */
  reuse_port: z.boolean().default(false),
  /** Optional HTTPS front listener. */
  https: RouterHttps.optional(),
  /** The HTTP registration API. */
  api: RouterApi.prefault({}),
  /** The NATS route bus; off when absent. */
  nats: RouterNats.optional(),
  /** Backend connections and integrity checks. */
  backends: RouterBackends.prefault({}),
  /** Default load-balancing algorithm (a route may override it with `options.loadbalancing`). */
  balancing_algorithm: BalancingAlgorithm.default("round-robin"),
  /** Response cookies that trigger a `__VCAP_ID__` sticky-session cookie. */
  sticky_cookie_names: z.array(z.string().min(1)).default(["JSESSIONID"]),
  /** gorouter's `secure_cookies`: the `__VCAP_ID__` cookie is always Secure. */
  secure_cookies: z.boolean().default(false),
  /**
   * gorouter's `sticky_sessions_for_auth_negotiate`: a response with
   * `WWW-Authenticate: Negotiate` gets `__VCAP_ID__` (60 s, SameSite=Strict)
   * and a request with `Authorization: Negotiate` and `__VCAP_ID__` reaches
   * only that instance (502 when it is gone).
   */
  sticky_sessions_for_auth_negotiate: z.boolean().default(false),
  /** How often stale endpoints are pruned. */
  prune_interval: Duration.prefault("30s"),
  /** Default stale threshold; a message's smaller `stale_threshold_in_seconds` wins. */
  stale_threshold: Duration.prefault("120s"),
  /**
   * How long a route whose last endpoint left (unregistered, stale or
   * pruned) answers 503 `no_endpoints` instead of 404 `unknown_route`, as
   * gorouter's `empty_pool_response_code_503` + `empty_pool_timeout`; "0s":
   * 404 at once.
   */
  empty_pool_timeout: Duration.prefault("10s"),
  /**
   * Trace headers for backends, off by default as in routing-release:
   * `enable_w3c` continues or starts `traceparent` and adds the router's
   * `tracestate` entry (`<w3c_tenant_id>@gorouter`); `enable_zipkin` adds B3
   * headers. Off, the client's trace headers pass through untouched.
   */
  tracing: z.strictObject({
    enable_w3c: z.boolean().default(false),
    enable_zipkin: z.boolean().default(false),
    w3c_tenant_id: z.string().regex(/^[a-z0-9][a-z0-9_\-*/]{0,240}$|^$/, {
      message:
        "must be a W3C tracestate tenant id (lowercase letters, digits, _-*/)",
    }).default(""),
  }).prefault({}),
  /**
   * A client's `X-Forwarded-Client-Cert`, as gorouter's setting:
   * `always_forward` passes it on as sent; `forward` only when the client
   * presented a certificate over TLS (a load balancer in front that sets it);
   * `sanitize_set` never, and sets it to the base64 DER of the client's own
   * certificate when the TLS front asked for one (it does not today, so the
   * header is removed).
   */
  forwarded_client_cert: z.enum(["always_forward", "forward", "sanitize_set"])
    .default("always_forward"),
  /**
   * gorouter's `sanitize_forwarded_proto`: replace a client's
   * `X-Forwarded-Proto` with the listener's scheme (off: a client's value
   * passes, one is added only when missing or empty).
   */
  sanitize_forwarded_proto: z.boolean().default(false),
  /** gorouter's `force_forwarded_proto_https`: always `X-Forwarded-Proto: https`. */
  force_forwarded_proto_https: z.boolean().default(false),
  /** Probe stale TLS endpoints with a TLS handshake and prune those that fail. */
  probe_stale_tls: z.boolean().default(true),
  /** Interval advertised to emitters in `router.start`. */
  register_interval: Duration.prefault("20s"),
  /**
   * Enables route services: the secret the `X-CF-Proxy-Signature` is
   * encrypted with (as gorouter's; routers of one fleet share it). Routes
   * with a `route_service_url` answer 502 `route_service_unsupported`
   * without it.
   */
  route_services_secret: z.string().min(1).optional(),
  /** The previous secret during a rotation: accepted, never used to sign. */
  route_services_secret_decrypt_only: z.string().min(1).optional(),
  /** How long a route-service signature stays valid (gorouter: 60s). */
  route_services_timeout: Duration.prefault("60s"),
  /** `X-CF-Forwarded-Url` scheme: https (true) or http. */
  route_services_recommend_https: z.boolean().default(true),
  /** Connections to route services. */
  route_services: RouterRouteServices.prefault({}),
  /** Time limit for a whole backend request (not applied to WebSockets). */
  request_timeout: Duration.prefault("900s"),
  /**
   * Largest accepted request head (request line and header fields) in KiB;
   * larger heads, or more than 100 header fields, get a 431. At most 60: the
   * HTTP engine (Deno.serve) refuses heads over 64 KiB itself.
   */
  max_header_kb: z.number().int().positive().max(60, {
    message:
      "must be at most 60: the router's HTTP engine (Deno.serve) refuses request heads over 64 KiB",
  }).default(60),
  /**
   * How long a client may take to send a request's head: from accept (TLS
   * handshake included), or from the first byte of a keep-alive
   * connection's next request (gorouter's `read_header_timeout`, Go's
   * `ReadHeaderTimeout`); "0s": no limit.
   */
  read_header_timeout: Duration.prefault("10s"),
  /** How long a client keep-alive connection may wait for its next request; "0s": no limit. */
  idle_timeout: Duration.prefault("90s"),
  /**
   * Concurrent client connections per listener (plain and HTTPS each);
   * more are closed at accept and counted in
   * `sigil_router_client_connections_refused_total`. A connection that has
   * sent a request holds 3 file descriptors (client, relay, engine): keep it
   * under a third of the process's open-files limit. 0: no cap.
   */
  max_connections: z.number().int().min(0).default(10000),
  /**
   * On SIGTERM, how long the router keeps accepting and serving while
   * `/healthz` answers 503 `draining`, so a load balancer checking it moves
   * traffic away first (gorouter's `drain_wait`; routing-release ships 20s).
   * Responses in this window carry `Connection: close`. 0 skips the wait.
   */
  drain_wait: Duration.prefault("20s"),
  /** After `drain_wait`, how long in-flight requests may finish. */
  drain_timeout: Duration.prefault("30s"),
  /** Router id in `router.start` (random when absent). */
  id: z.string().min(1).optional(),
  /** Access log. */
  access_log: RouterAccessLog.prefault({}),
  /** Log level of the router's own events. */
  log_level: LogLevel,
  /**
   * How often `backends.cert`/`key` and `api.cert`/`key` are re-read; a
   * changed pair (e.g. renewed by `sigil rotator`) is loaded without a restart.
   */
  cert_check_interval: Duration.prefault("5s"),
  /**
   * `credential-expiring` is logged when less than this fraction of a
   * certificate's lifetime is left.
   */
  expiry_warning: z.strictObject({
    cert_fraction: z.number().gt(0).lt(1).default(0.2),
  }).prefault({}),
}).refine(
  (r) =>
    r.route_services_secret_decrypt_only === undefined ||
    r.route_services_secret !== undefined,
  {
    message:
      "route_services_secret_decrypt_only needs route_services_secret (the new secret signs, the old one only validates)",
    path: ["route_services_secret_decrypt_only"],
  },
);
/** Resolved `router` section. */
export type RouterSection = z.output<typeof RouterSection>;
/** The `router` section as written. */
export type RouterSectionInput = z.input<typeof RouterSection>;

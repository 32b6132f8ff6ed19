/**
 * Assembles the data path. A request goes, one file per step:
 * `_listeners.ts` (`Deno.serve`) → `_request.ts` (headers, route lookup) →
 * `_exchange.ts` (choose endpoint, attempt, classify, `_decide.ts`, answer) →
 * `_attempt.ts` (HTTP) or `_websocket.ts` (upgrade and relay) →
 * `_transport.ts` (keep-alive agents, the backend dial). `_record.ts` holds
 * the per-request record and the access-log/metrics recorder all steps use.
 * @module
 */
import type { TracingSettings } from "./_tracing.ts";
import type { Logger } from "../observe/mod.ts";
import type { Clock } from "../common/mod.ts";
import type { Balancing } from "./_pool.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import type { Transports } from "./_transport.ts";
import type { RouteEvents } from "./_events.ts";
import type { ExchangeSink } from "./_record.ts";
import { Recorder } from "./_record.ts";
import { HttpAttempts } from "./_attempt.ts";
import { WebSocketAttempts } from "./_websocket.ts";
import { Exchanges } from "./_exchange.ts";
import { RequestHandler } from "./_request.ts";
import { RouteServices } from "./_route_service_proxy.ts";
import type { RouteServiceSettings } from "./_route_service_proxy.ts";
import type {
  ForwardedClientCertMode,
  ForwardedProtoSettings,
} from "./_forwarded.ts";

/** Settings the data path needs, resolved to numbers. */
export interface ProxySettings {
  maxAttempts: number;
  maxConns: number;
  requestTimeoutMs: number;
  failureCooldownMs: number;
  maxHeaderBytes: number;
  balancing: Balancing;
  stickyCookieNames: string[];
  /** `secure_cookies`. */
  secureCookies?: boolean;
  /** `sticky_sessions_for_auth_negotiate`. */
  stickyAuthNegotiate?: boolean;
  /** `router.tracing`. */
  tracing: TracingSettings;
  /** `router.forwarded_client_cert`. */
  forwardedClientCert?: ForwardedClientCertMode;
  /** `sanitize_forwarded_proto`, `force_forwarded_proto_https`. */
  forwardedProto?: ForwardedProtoSettings;
}

/** Everything the data path uses. */
export interface ProxyContext {
  registry: Registry;
  transports: Transports;
  stats: RouterStats;
  accessLog: ExchangeSink | undefined;
  logger: Logger;
  clock: Clock;
  settings: ProxySettings;
  /** Recent prunes and last errors, for the status page. */
  events?: RouteEvents;
  /** Route services (signer, TLS); disabled when absent. */
  routeServices?: Omit<RouteServiceSettings, "requestTimeoutMs">;
}

/** The request handler plus the in-flight bookkeeping used by timeouts and drain. */
export interface ProxyHandler {
  handle(
    req: Request,
    info: Deno.ServeHandlerInfo,
    proto: string,
  ): Response | Promise<Response>;
  /** Aborts backend requests older than the request timeout (clock time). */
  sweep(now: number): void;
  /** Requests in flight (WebSockets included). */
  readonly inflight: number;
  /** Closes open WebSocket relays (shutdown). */
  closeUpgrades(): void;
}

/**
 * Creates the data-path handler.
 *
 * @param ctx Registry, transports, metrics, logs and settings.
 * @returns The handler (wrap it for `Deno.serve`).
 */
export function createProxyHandler(ctx: ProxyContext): ProxyHandler {
  const { registry, transports, stats, logger, clock, settings } = ctx;
  const recorder = new Recorder(stats, ctx.accessLog);
  const http = new HttpAttempts({
    transports,
    recorder,
    stickyNames: settings.stickyCookieNames,
    secureCookies: settings.secureCookies,
    stickyAuthNegotiate: settings.stickyAuthNegotiate,
  });
  const websocket = new WebSocketAttempts({
    transports,
    recorder,
    stats,
    logger,
  });
  const exchanges = new Exchanges({
    registry,
    recorder,
    stats,
    logger,
    clock,
    events: ctx.events,
    settings,
    http,
    websocket,
    shuttingDown: () => transports.closed,
    explainUntrusted: (ep, err) => transports.explainUntrusted(ep, err),
  });
  const routeServices = new RouteServices({
    registry,
    recorder,
    transports,
    stats,
    logger,
    clock,
    settings: {
      signer: undefined,
      recommendHttps: true,
      maxAttempts: 3,
      skipSslValidation: false,
      ...ctx.routeServices,
      requestTimeoutMs: settings.requestTimeoutMs,
    },
  });
  const requests = new RequestHandler({
    registry,
    recorder,
    exchanges,
    routeServices,
    stats,
    clock,
    maxHeaderBytes: settings.maxHeaderBytes,
    stickyCookieNames: settings.stickyCookieNames,
    stickyAuthNegotiate: settings.stickyAuthNegotiate,
    tracing: settings.tracing,
    forwardedClientCert: settings.forwardedClientCert,
    forwardedProto: settings.forwardedProto,
  });
  return {
    handle: (req, info, proto) => requests.handle(req, info, proto),
    sweep: (now) => http.sweep(now, settings.requestTimeoutMs),
    get inflight() {
      return http.size + websocket.size;
    },
    closeUpgrades: () => websocket.closeAll(),
  };
}

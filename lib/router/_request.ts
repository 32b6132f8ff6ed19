/**
 * The first step of a request: one pass over its headers (hop-by-hop ones
 * dropped, the few the router reads noted, the rest copied flat for
 * `node:http`), the route lookup, the forwarded headers, then the exchange.
 * Requests the router answers itself (431, 400, 404) end here.
 *
 * Per-request work is kept small on purpose (no URL parsing, no regexes, no
 * label lookups): the benchmark against nginx is decided here.
 * @module
 */
import type { Clock } from "../common/mod.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import type { Exchange, Recorder } from "./_record.ts";
import type { Exchanges } from "./_exchange.ts";
import type { RouteServices } from "./_route_service_proxy.ts";
import {
  dropConnectionTokens,
  hostname,
  REQUEST_HEADER,
  RH_B3,
  RH_CF_APP_INSTANCE,
  RH_CONNECTION,
  RH_CONTENT_LENGTH,
  RH_COOKIE,
  RH_DROP,
  RH_FORWARDED_CLIENT_CERT,
  RH_FORWARDED_FOR,
  RH_FORWARDED_PROTO,
  RH_HOST,
  RH_IDEMPOTENCY_KEY,
  RH_REFERER,
  RH_REQUEST_START,
  RH_UPGRADE,
  RH_USER_AGENT,
  RH_W3C,
  stickyTarget,
} from "./_headers.ts";
import { addTraceHeaders } from "./_tracing.ts";
import { forwardedClientCert, forwardedProto } from "./_forwarded.ts";
import type {
  ForwardedClientCertMode,
  ForwardedProtoSettings,
} from "./_forwarded.ts";
import type { IncomingTrace, TracingSettings } from "./_tracing.ts";

/** Options of {@linkcode RequestHandler}. */
export interface RequestHandlerOptions {
  registry: Registry;
  recorder: Recorder;
  exchanges: Exchanges;
  /** Routes bound to a route service go through it. */
  routeServices: RouteServices;
  stats: RouterStats;
  clock: Clock;
  /** Larger request heads get a 431. */
  maxHeaderBytes: number;
  /** Cookie names that pin a request to an instance (with `__VCAP_ID__`). */
  stickyCookieNames: string[];
  /**
   * `sticky_sessions_for_auth_negotiate`: `Authorization: Negotiate` with
   * `__VCAP_ID__` must reach that instance.
   */
  stickyAuthNegotiate?: boolean;
  /** Trace headers (`router.tracing`): off, the client's pass through. */
  tracing: TracingSettings;
  /** `router.forwarded_client_cert`. @default {"always_forward"} */
  forwardedClientCert?: ForwardedClientCertMode;
  /** `sanitize_forwarded_proto`, `force_forwarded_proto_https`. @default {both false} */
  forwardedProto?: ForwardedProtoSettings;
}

const GOROUTER_PROTO: ForwardedProtoSettings = {
  sanitize: false,
  forceHttps: false,
};

/** Turns a client request into an exchange, or answers it directly. */
export class RequestHandler {
  readonly #o: RequestHandlerOptions;

  /** @param options Registry, exchange runner, metrics and limits. */
  constructor(options: RequestHandlerOptions) {
    this.#o = options;
  }

  /**
   * Handles one request from `Deno.serve`.
   *
   * @param proto `"http"` or `"https"`: the listener it came in on.
   * @param peerCert DER of the client's certificate, when the TLS front
   *   asked for one (`sanitize_set` forwards it, `forward` trusts the
   *   client's `X-Forwarded-Client-Cert` only then).
   */
  handle(
    req: Request,
    info: Deno.ServeHandlerInfo,
    proto: string,
    peerCert?: Uint8Array,
  ): Response | Promise<Response> {
    const { registry, stats, recorder } = this.#o;
    stats.requests++;
    const url = req.url;
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
    const remote = (info.remoteAddr as Deno.NetAddr).hostname;
    const requestId = crypto.randomUUID();
    const startMs = this.#o.clock.now();
    const headers: string[] = [];
    let size = 0;
    let hostHeader: string | undefined;
    let connection: string | undefined;
    let upgrade: string | undefined;
    let xff: string | undefined;
    let xfp: string | undefined;
    let xfcc: string | undefined;
    let requestStart: string | undefined;
    let trace: IncomingTrace | undefined;
    const { tracing } = this.#o;
    let cookie: string | undefined;
    let userAgent = "";
    let referer = "";
    let hasLength = false;
    let emptyBody = false;
    let appInstance: string | undefined;
    let idempotent = false;
    // One pass over the headers: drop hop-by-hop ones, note the few the
    // router reads, copy the rest as a flat array node:http sends as is.
    for (const [name, value] of req.headers) {
      size += name.length + value.length + 4;
      switch (REQUEST_HEADER.get(name)) {
        case undefined:
          headers.push(name, value);
          continue;
        case RH_DROP:
          continue;
        case RH_CONNECTION:
          connection = value;
          continue;
        case RH_UPGRADE:
          upgrade = value;
          continue;
        case RH_HOST:
          hostHeader = value;
          break;
        case RH_FORWARDED_FOR:
          xff = value;
          continue;
        case RH_FORWARDED_PROTO:
          xfp = value;
          continue;
        case RH_FORWARDED_CLIENT_CERT:
          xfcc = value;
          continue;
        case RH_REQUEST_START:
          requestStart = value;
          break;
        case RH_W3C:
          if (!tracing.w3c) break;
          if (name === "traceparent") (trace ??= {}).traceparent = value;
          else (trace ??= {}).tracestate = value;
          continue;
        case RH_B3:
          if (!tracing.zipkin) break;
          readB3(trace ??= {}, name, value);
          continue;
        case RH_COOKIE:
          cookie = value;
          break;
        case RH_USER_AGENT:
          userAgent = value;
          break;
        case RH_REFERER:
          referer = value;
          break;
        case RH_CONTENT_LENGTH:
          hasLength = true;
          emptyBody = value === "0";
          break;
        case RH_IDEMPOTENCY_KEY:
          if (value !== "") idempotent = true;
          break;
        case RH_CF_APP_INSTANCE:
          appInstance = value; // read by the router, not forwarded
          continue;
      }
      headers.push(name, value);
    }
    const x: Exchange = {
      start: performance.now(),
      startMs,
      method: req.method,
      host: "",
      path,
      remote,
      proto,
      requestId,
      headers,
      userAgent,
      referer,
      forwardedFor: xff ?? "",
      forwardedProto: xfp ?? "",
      bytesIn: 0,
      bytesOut: 0,
      failed: 0,
      ep: undefined,
      routerError: "",
      status: 0,
      pool: undefined,
      body: null,
      upgrade: undefined,
      sticky: undefined,
      mustBeSticky: false,
      pinned: undefined,
      idempotencyKey: idempotent,
      attempt: 0,
    };
    if (size > this.#o.maxHeaderBytes) {
      return recorder.errorResponse(
        x,
        431,
        "",
        "431 Request Header Fields Too Large",
      );
    }
    if (connection !== undefined) dropConnectionTokens(headers, connection);
    // Deno builds the URL from Host, or from the target when the request
    // line is absolute-form (`GET http://a.test/ HTTP/1.1`), and from
    // :authority over HTTP/2.
    const a = url.indexOf("//") + 2;
    const authority = url.slice(a, url.indexOf("/", a));
    if (hostHeader === undefined) {
      hostHeader = authority;
      headers.push("host", hostHeader);
    } else if (
      hostHeader !== "" && authority !== hostHeader &&
      hostname(authority) !== hostname(hostHeader)
    ) {
      // Absolute-form: the target's authority wins over Host (RFC 9112
      // 3.2.2), as Go sets r.Host for gorouter.
      hostHeader = authority;
      for (let i = 0; i < headers.length; i += 2) {
        if (headers[i] === "host") headers[i + 1] = authority;
      }
    }
    const host = hostname(hostHeader);
    x.host = host;
    // gorouter (handlers/lookup.go): no Host, or a Host that is the client's
    // own address (what some load balancers fill in for HTTP/1.0), is 400.
    if (host === "" || host === remote) {
      return recorder.errorResponse(
        x,
        400,
        "empty_host",
        "400 Bad Request: Request had empty Host header",
        CACHE_BRIEFLY,
      );
    }
    let instance: [string, string] | undefined;
    if (appInstance !== undefined) {
      instance = parseAppInstance(appInstance);
      if (instance === undefined) {
        return recorder.errorResponse(
          x,
          400,
          "invalid_cf_app_instance_header",
          "400 Bad Request: Invalid X-CF-App-Instance Header",
          NO_CACHE,
        );
      }
    }
    const pool = registry.lookup(host, path);
    if (pool !== undefined && instance !== undefined) {
      x.pinned = pool.findAppInstance(instance[0], instance[1]);
    }
    if (pool === undefined || (instance !== undefined && !x.pinned)) {
      if (instance !== undefined) {
        return recorder.errorResponse(
          x,
          400,
          "unknown_route",
          `400 Bad Request: Requested instance ('${instance[1]}') with guid ('${
            instance[0]
          }') does not exist for route ('${hostHeader}')`,
          NO_CACHE,
        );
      }
      if (registry.recentlyEmptied(host, path)) {
        return recorder.errorResponse(
          x,
          503,
          "no_endpoints",
          `503 Service Unavailable: Requested route ('${hostHeader}') has no available endpoints.`,
          CACHE_BRIEFLY,
        );
      }
      return recorder.errorResponse(
        x,
        404,
        "unknown_route",
        `404 Not Found: Requested route ('${hostHeader}') does not exist.`,
        NO_CACHE,
      );
    }
    const forwardedFor = xff === undefined ? remote : `${xff}, ${remote}`;
    x.forwardedFor = forwardedFor;
    headers.push("x-forwarded-for", forwardedFor);
    // gorouter's handlers/clientcert.go and x_forwarded_proto.go; a
    // signature back from the route service is checked in intercept().
    const over = {
      tls: proto === "https",
      peerCert,
      fromRouteService: pool.routeServiceUrl !== undefined &&
        !!req.headers.get("x-cf-proxy-signature"),
    };
    const cert =
      xfcc === undefined && this.#o.forwardedClientCert !== "sanitize_set"
        ? undefined
        : forwardedClientCert(
          this.#o.forwardedClientCert ?? "always_forward",
          xfcc,
          over,
        );
    if (cert !== undefined) headers.push("x-forwarded-client-cert", cert);
    const fp = forwardedProto(
      this.#o.forwardedProto ?? GOROUTER_PROTO,
      xfp,
      over,
    );
    x.forwardedProto = fp ?? "";
    if (fp !== undefined) headers.push("x-forwarded-proto", fp);
    if (requestStart === undefined) {
      headers.push("x-request-start", String(startMs));
    }
    headers.push("x-vcap-request-id", requestId);
    if (tracing.w3c || tracing.zipkin) {
      addTraceHeaders(headers, tracing, trace ?? {}, requestId);
    }
    if (cookie !== undefined && cookie.includes("__VCAP_ID__=")) {
      const auth = this.#o.stickyAuthNegotiate
        ? req.headers.get("authorization")
        : null;
      if (auth !== null && auth.slice(0, 9).toLowerCase() === "negotiate") {
        // As gorouter's GetStickySession: no other instance may answer.
        x.sticky = stickyTarget(cookie, [], true);
        x.mustBeSticky = x.sticky !== undefined;
      } else x.sticky = stickyTarget(cookie, this.#o.stickyCookieNames);
    }
    x.pool = pool;
    if (pool.routeServiceUrl !== undefined) {
      // Through the route service (or back from it, signature checked);
      // never around it (`_route_service_proxy.ts`).
      const r = this.#o.routeServices.intercept(
        x,
        req,
        hostHeader,
        pool.routeServiceUrl,
      );
      if (r !== undefined) return r;
    }
    if (upgrade !== undefined && upgrade.toLowerCase() === "websocket") {
      x.upgrade = req;
      return this.#o.exchanges.run(x);
    }
    // `Content-Length: 0` is no body (replayable, as Go's http.NoBody).
    const body = emptyBody ? null : req.body;
    if (body !== null && !hasLength) {
      headers.push("transfer-encoding", "chunked");
    }
    x.body = body;
    return this.#o.exchanges.run(x);
  }
}

/** Notes one B3 header (lowercased name) of the client's. */
function readB3(t: IncomingTrace, name: string, value: string): void {
  switch (name) {
    case "b3":
      t.b3 = value;
      break;
    case "x-b3-traceid":
      t.b3TraceId = value;
      break;
    case "x-b3-spanid":
      t.b3SpanId = value;
      break;
    case "x-b3-parentspanid":
      t.b3ParentSpanId = value;
      break;
    case "x-b3-sampled":
      t.b3Sampled = value;
      break;
    case "x-b3-flags":
      t.b3Flags = value;
  }
}

/** gorouter's `addNoCacheControlHeader`: never cache a missing route. */
const NO_CACHE = "no-cache, no-store";
/** gorouter's `addInvalidResponseCacheControlHeader` (2 s). */
const CACHE_BRIEFLY = "public,max-age=2";

/** `APP_GUID:INDEX`, as gorouter's `parseAppInstanceHeader` accepts it. */
const APP_INSTANCE = /^([\da-f]{8}-(?:[\da-f]{4}-){3}[\da-f]{12}):(\d+)$/;

/** `[guid, index]` from an `X-CF-App-Instance` value, or undefined. */
function parseAppInstance(value: string): [string, string] | undefined {
  const m = APP_INSTANCE.exec(value);
  return m === null ? undefined : [m[1]!, m[2]!];
}

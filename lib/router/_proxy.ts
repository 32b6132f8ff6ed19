/**
 * The data path: a `Deno.serve` handler that looks the Host up, picks an
 * endpoint, forwards over the endpoint's keep-alive agent, retries safe
 * failures on the next endpoint, and streams the response back.
 *
 * Per-request work is kept small on purpose (no URL parsing, no regexes, no
 * label lookups): the benchmark against nginx is decided here.
 * @module
 */
import type { Logger } from "../observe/mod.ts";
import type { Clock } from "../common/mod.ts";
import type { AccessLog } from "./_access_log.ts";
import type { Endpoint, Pool } from "./_pool.ts";
import type { Balancing } from "./_pool.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import type { Transports } from "./_transport.ts";
import { codedError } from "./_transport.ts";
import {
  classifyFailure,
  failureReason,
  failureStatus,
  isPrunable,
} from "./_fails.ts";
import type { FailureKind } from "./_fails.ts";
import { proxyWebSocket } from "./_websocket.ts";
import { Attempt } from "./_attempt.ts";
import type { RouteEvents } from "./_events.ts";
import type { AttemptFailure, AttemptHost, Exchange } from "./_attempt.ts";
import {
  dropConnectionTokens,
  hostname,
  REQUEST_HEADER,
  RH_CONNECTION,
  RH_CONTENT_LENGTH,
  RH_COOKIE,
  RH_DROP,
  RH_FORWARDED_FOR,
  RH_FORWARDED_PROTO,
  RH_HOST,
  RH_REFERER,
  RH_REQUEST_START,
  RH_TRACEPARENT,
  RH_UPGRADE,
  RH_USER_AGENT,
  stickyTarget,
  traceparent,
} from "./_headers.ts";

/** Reason phrases of the statuses an endpoint failure can end in. */
const STATUS_TEXT: Record<number, string> = {
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  525: "SSL Handshake Failed",
  526: "Invalid SSL Certificate",
};

/** Settings the data path needs, resolved to numbers. */
export interface ProxySettings {
  maxAttempts: number;
  maxConns: number;
  requestTimeoutMs: number;
  failureCooldownMs: number;
  maxHeaderBytes: number;
  balancing: Balancing;
  stickyCookieNames: string[];
}

/** Everything the handler uses. */
export interface ProxyContext {
  registry: Registry;
  transports: Transports;
  stats: RouterStats;
  accessLog: AccessLog | undefined;
  logger: Logger;
  clock: Clock;
  settings: ProxySettings;
  /** Recent prunes and last errors, for the status page. */
  events?: RouteEvents;
}

const IDEMPOTENT = new Set([
  "GET",
  "HEAD",
  "OPTIONS",
  "TRACE",
  "PUT",
  "DELETE",
]);

/** The request handler plus the in-flight bookkeeping used by timeouts and drain. */
export interface ProxyHandler {
  handle(
    req: Request,
    info: Deno.ServeHandlerInfo,
    proto: string,
  ): Response | Promise<Response>;
  /** Aborts backend requests older than the request timeout. */
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
  const { registry, stats, settings } = ctx;
  const inflight = new Set<Attempt>();
  const relays = new Set<{ close(): void }>();
  const stickyNames = settings.stickyCookieNames;

  function finish(x: Exchange, status: number): void {
    x.status = status;
    const seconds = (performance.now() - x.start) / 1000;
    stats.observe(status, seconds);
    ctx.accessLog?.write(x, status, seconds);
  }

  function errorResponse(
    x: Exchange,
    status: number,
    routerError: string,
    body: string,
  ): Response {
    x.routerError = routerError;
    finish(x, status);
    const headers: [string, string][] = [
      ["content-type", "text/plain; charset=utf-8"],
      ["x-vcap-request-id", x.requestId],
    ];
    if (routerError !== "") headers.push(["x-cf-routererror", routerError]);
    return new Response(body + "\n", { status, headers });
  }

  function onFailure(
    pool: Pool,
    ep: Endpoint,
    f: AttemptFailure,
    kind: FailureKind,
    websocket: boolean,
  ): void {
    if (kind === "identity") stats.backendInvalidId++;
    else if (kind === "untrusted") stats.backendInvalidTlsCert++;
    else if (kind === "handshake") stats.backendTlsHandshakeFailed++;
    const prune = ep.tls && isPrunable(kind);
    const code = failureReason(f.err, kind);
    const now = ctx.clock.now();
    ctx.events?.failed(ep, kind, code, now);
    ctx.logger.warn("backend-failed", {
      backend: ep.key,
      instance: ep.instanceId,
      route: pool.uri,
      kind,
      code,
      phase: f.phase,
      websocket,
      pruned: prune,
    });
    if (prune) {
      if (registry.prune(pool, ep)) {
        stats.routesPruned.inc({ reason: kind });
        ctx.events?.pruned(pool, ep, kind, code, now);
      }
    } else {
      ep.failedUntil = now + settings.failureCooldownMs;
    }
  }

  function failed(
    x: Exchange,
    f: AttemptFailure | undefined,
    kind: FailureKind,
  ) {
    stats.badGateways++;
    const reason = failureReason(f?.err, kind);
    const status = failureStatus(kind);
    return errorResponse(
      x,
      status,
      `endpoint_failure (${reason})`,
      `${status} ${STATUS_TEXT[status] ?? "Bad Gateway"}: endpoint failure`,
    );
  }

  /** The next endpoint to try, or the error response when there is none. */
  function choose(
    x: Exchange,
    pool: Pool,
    sticky: string | undefined,
    tried: Endpoint[] | undefined,
    retrying: boolean,
  ): Endpoint | Response | undefined {
    if (sticky !== undefined && tried === undefined) {
      const pinned = pool.findInstance(sticky);
      if (
        pinned !== undefined && pinned.inflight < settings.maxConns &&
        pinned.failedUntil <= ctx.clock.now()
      ) return pinned;
    }
    const picked = pool.pick(
      ctx.clock.now(),
      tried,
      pool.balancing ?? settings.balancing,
      settings.maxConns,
    );
    if (typeof picked !== "string") return picked;
    if (retrying) return undefined;
    if (picked === "exhausted") {
      stats.backendExhaustedConns++;
      return errorResponse(
        x,
        503,
        "Connection Limit Reached",
        "503 Service Unavailable: connection limit reached",
      );
    }
    return errorResponse(
      x,
      503,
      "no_endpoints",
      "503 Service Unavailable: no endpoints",
    );
  }

  /** Starts the exchange on its first endpoint. */
  function forward(
    body: ReadableStream<Uint8Array> | null,
    x: Exchange,
    pool: Pool,
    sticky: string | undefined,
  ): Response | Promise<Response> {
    const ep = choose(x, pool, sticky, undefined, false);
    if (ep === undefined) return failed(x, undefined, "other");
    if (ep instanceof Response) return ep;
    x.ep = ep;
    ep.inflight++;
    ep.requests++;
    // One Promise per request, shared by every attempt (no async wrapper).
    return new Promise<Response>((resolve) =>
      new Attempt(
        host,
        x,
        ep,
        pool,
        body,
        resolve,
        0,
        undefined,
        sticky,
        Math.min(settings.maxAttempts, pool.size),
      ).run()
    );
  }

  /** An attempt got no response: retry if that is safe, else answer. */
  function attemptFailed(a: Attempt, f: AttemptFailure): void {
    // Runs in socket callbacks: never let a bug here escape as an uncaught
    // exception (the async loop this replaces turned it into a 500).
    try {
      retryOrAnswer(a, f);
    } catch (err) {
      ctx.logger.error("request-failed", { error: String(err) });
      a.resolve(
        errorResponse(a.x, 502, "", "502 Bad Gateway: internal error"),
      );
    }
  }

  function retryOrAnswer(a: Attempt, f: AttemptFailure): void {
    const { x, ep, pool, body } = a;
    ep.inflight--;
    const kind = classifyFailure(f.err, f.phase);
    x.failed++;
    if (ctx.transports.closed) {
      // The router's own shutdown cut it at the drain timeout: not the
      // backend's fault (no cooldown, no prune), and nothing to retry on.
      a.resolve(failed(x, f, kind));
      return;
    }
    onFailure(pool, ep, f, kind, false);
    // Safe to retry: no request byte can have reached the backend, or
    // an idempotent request without body got no response byte.
    const safe = f.phase !== "sent" ||
      (body === null && IDEMPOTENT.has(x.method) &&
        (kind === "reset" || kind === "other"));
    if (safe && a.n + 1 < a.max) {
      stats.retries++;
      const tried = a.tried ?? [];
      tried.push(ep);
      const next = choose(x, pool, a.sticky, tried, true);
      if (next instanceof Response) {
        a.resolve(next);
        return;
      }
      if (next !== undefined) {
        x.ep = next;
        next.inflight++;
        next.requests++;
        new Attempt(
          host,
          x,
          next,
          pool,
          body,
          a.resolve,
          a.n + 1,
          tried,
          undefined,
          a.max,
        ).run();
        return;
      }
    }
    a.resolve(failed(x, f, kind));
  }

  const host: AttemptHost = {
    transports: ctx.transports,
    stats,
    stickyNames,
    inflight,
    finish,
    failed: attemptFailed,
    errorResponse,
  };

  function handle(
    req: Request,
    info: Deno.ServeHandlerInfo,
    proto: string,
  ): Response | Promise<Response> {
    stats.requests++;
    const url = req.url;
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
    const remote = (info.remoteAddr as Deno.NetAddr).hostname;
    const requestId = crypto.randomUUID();
    const startMs = Date.now();
    const headers: string[] = [];
    let size = 0;
    let hostHeader: string | undefined;
    let connection: string | undefined;
    let upgrade: string | undefined;
    let xff: string | undefined;
    let xfp: string | undefined;
    let requestStart: string | undefined;
    let incomingTrace: string | undefined;
    let cookie: string | undefined;
    let userAgent = "";
    let referer = "";
    let hasLength = false;
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
          break;
        case RH_REQUEST_START:
          requestStart = value;
          break;
        case RH_TRACEPARENT:
          incomingTrace = value;
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
          break;
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
    };
    if (size > settings.maxHeaderBytes) {
      return errorResponse(x, 431, "", "431 Request Header Fields Too Large");
    }
    if (connection !== undefined) dropConnectionTokens(headers, connection);
    if (hostHeader === undefined) {
      // HTTP/2 carries the host in :authority, which Deno puts in the URL.
      const a = url.indexOf("//") + 2;
      hostHeader = url.slice(a, url.indexOf("/", a));
      headers.push("host", hostHeader);
    }
    const host = hostname(hostHeader);
    x.host = host;
    if (host === "") {
      return errorResponse(x, 400, "empty_host", "400 Bad Request: empty host");
    }
    const pool = registry.lookup(host, path);
    if (pool === undefined) {
      return errorResponse(
        x,
        404,
        "unknown_route",
        `404 Not Found: Requested route ('${host}') does not exist.`,
      );
    }
    const forwardedFor = xff === undefined ? remote : `${xff}, ${remote}`;
    x.forwardedFor = forwardedFor;
    headers.push("x-forwarded-for", forwardedFor);
    if (xfp === undefined) {
      x.forwardedProto = proto;
      headers.push("x-forwarded-proto", proto);
    }
    if (requestStart === undefined) {
      headers.push("x-request-start", String(startMs));
    }
    headers.push(
      "x-vcap-request-id",
      requestId,
      "traceparent",
      traceparent(incomingTrace, requestId),
    );
    let sticky: string | undefined;
    if (cookie !== undefined && cookie.includes("__VCAP_ID__=")) {
      sticky = stickyTarget(cookie, stickyNames);
    }
    if (upgrade !== undefined && upgrade.toLowerCase() === "websocket") {
      return proxyWebSocket(req, x, pool, {
        ctx,
        pick: (tried) => choose(x, pool, sticky, tried, tried !== undefined),
        onFailure: (ep, f, kind) => onFailure(pool, ep, f, kind, true),
        failed,
        finish,
        errorResponse,
        relays,
      });
    }
    const body = req.body;
    if (body !== null && !hasLength) {
      headers.push("transfer-encoding", "chunked");
    }
    return forward(body, x, pool, sticky);
  }

  return {
    handle,
    sweep(now: number) {
      for (const a of inflight) {
        if (now - a.started > settings.requestTimeoutMs) {
          inflight.delete(a);
          a.abort(
            codedError("ERR_ROUTER_REQUEST_TIMEOUT", "Request timed out"),
          );
        }
      }
    },
    get inflight() {
      return inflight.size + relays.size;
    },
    closeUpgrades() {
      for (const r of [...relays]) r.close();
    },
  };
}

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
import type {
  AttemptFailure,
  AttemptHost,
  Exchange,
  InFlight,
} from "./_attempt.ts";
import {
  dropConnectionTokens,
  HOP,
  hostname,
  stickyTarget,
  traceparent,
} from "./_headers.ts";

/** Settings the data path needs, resolved to numbers. */
export interface ProxySettings {
  maxAttempts: number;
  maxConns: number;
  dialTimeoutMs: number;
  handshakeTimeoutMs: number;
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
  const inflight = new Set<InFlight>();
  const relays = new Set<{ close(): void }>();
  const stickyNames = settings.stickyCookieNames;

  function finish(x: Exchange, status: number): void {
    x.status = status;
    const seconds = (performance.now() - x.start) / 1000;
    stats.observe(status, seconds);
    const log = ctx.accessLog;
    if (log === undefined) return;
    const ep = x.ep;
    const h = x.headers;
    log.write({
      time: new Date(x.startMs).toISOString(),
      host: x.host,
      method: x.method,
      path: x.path,
      protocol: "HTTP/1.1",
      status,
      bytes_in: x.bytesIn,
      bytes_out: x.bytesOut,
      remote: x.remote,
      backend: ep?.key ?? "",
      request_id: x.requestId,
      response_time: seconds,
      app_id: ep?.app ?? "",
      app_index: ep?.index ?? "",
      instance_id: ep?.instanceId ?? "",
      failed_attempts: x.failed,
      router_error: x.routerError,
      user_agent: h["user-agent"] ?? "",
      referer: h["referer"] ?? "",
      x_forwarded_for: h["x-forwarded-for"] ?? "",
      x_forwarded_proto: h["x-forwarded-proto"] ?? "",
    });
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

  const host: AttemptHost = {
    transports: ctx.transports,
    stats,
    stickyNames,
    inflight,
    finish,
    errorResponse,
  };

  function onFailure(
    pool: Pool,
    ep: Endpoint,
    f: AttemptFailure,
    kind: FailureKind,
  ): void {
    if (kind === "identity") stats.backendInvalidId++;
    else if (kind === "untrusted") stats.backendInvalidTlsCert++;
    else if (kind === "handshake") stats.backendTlsHandshakeFailed++;
    const prune = ep.tls && isPrunable(kind);
    ctx.logger.warn("backend-failed", {
      backend: ep.key,
      instance: ep.instanceId,
      route: pool.uri,
      kind,
      code: failureReason(f.err, kind),
      phase: f.phase,
      pruned: prune,
    });
    if (prune) {
      if (registry.prune(pool, ep)) stats.routesPruned.inc({ reason: kind });
    } else {
      ep.failedUntil = ctx.clock.now() + settings.failureCooldownMs;
    }
  }

  async function forward(
    req: Request,
    x: Exchange,
    pool: Pool,
    sticky: string | undefined,
  ): Promise<Response> {
    const body = req.body;
    const algorithm = pool.balancing ?? settings.balancing;
    const attempts = Math.min(settings.maxAttempts, pool.size);
    let tried: Endpoint[] | undefined;
    let last: AttemptFailure | undefined;
    let lastKind: FailureKind = "other";
    for (let attempt = 0; attempt < attempts; attempt++) {
      let ep: Endpoint | undefined;
      if (sticky !== undefined && attempt === 0) {
        const pinned = pool.findInstance(sticky);
        if (
          pinned !== undefined && pinned.inflight < settings.maxConns &&
          pinned.failedUntil <= ctx.clock.now()
        ) ep = pinned;
      }
      if (ep === undefined) {
        const picked = pool.pick(
          ctx.clock.now(),
          tried,
          algorithm,
          settings.maxConns,
        );
        if (typeof picked === "string") {
          if (last !== undefined) break;
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
        ep = picked;
      }
      x.ep = ep;
      ep.inflight++;
      try {
        return await new Attempt(host, x, ep, pool, body).run();
      } catch (e) {
        ep.inflight--;
        const f = e as AttemptFailure;
        const kind = classifyFailure(f.err, f.phase);
        x.failed++;
        last = f;
        lastKind = kind;
        onFailure(pool, ep, f, kind);
        const safe = f.phase !== "sent" ||
          (body === null && IDEMPOTENT.has(x.method) &&
            (kind === "reset" || kind === "other"));
        if (!safe) break;
        (tried ??= []).push(ep);
        if (attempt + 1 < attempts) stats.retries++;
      }
    }
    stats.badGateways++;
    const reason = failureReason(last?.err, lastKind);
    const status = failureStatus(lastKind);
    return errorResponse(
      x,
      status,
      `endpoint_failure (${reason})`,
      `${status} ${
        status === 503 ? "Service Unavailable" : "Bad Gateway"
      }: endpoint failure`,
    );
  }

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
    const headers: Record<string, string> = {};
    const x: Exchange = {
      start: performance.now(),
      startMs: Date.now(),
      method: req.method,
      host: "",
      path,
      remote,
      proto,
      requestId,
      headers,
      bytesIn: 0,
      bytesOut: 0,
      failed: 0,
      ep: undefined,
      routerError: "",
      status: 0,
    };
    let size = 0;
    let connection: string | undefined;
    let upgrade: string | undefined;
    for (const [name, value] of req.headers) {
      size += name.length + value.length + 4;
      if (HOP.has(name)) {
        if (name === "connection") connection = value;
        else if (name === "upgrade") upgrade = value;
        continue;
      }
      headers[name] = value;
    }
    if (size > settings.maxHeaderBytes) {
      return errorResponse(
        x,
        431,
        "",
        "431 Request Header Fields Too Large",
      );
    }
    if (connection !== undefined) dropConnectionTokens(headers, connection);
    let hostHeader = headers["host"];
    if (hostHeader === undefined) {
      // HTTP/2 carries the host in :authority, which Deno puts in the URL.
      const a = url.indexOf("//") + 2;
      hostHeader = url.slice(a, url.indexOf("/", a));
      headers["host"] = hostHeader;
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
    const xff = headers["x-forwarded-for"];
    headers["x-forwarded-for"] = xff === undefined
      ? remote
      : `${xff}, ${remote}`;
    if (headers["x-forwarded-proto"] === undefined) {
      headers["x-forwarded-proto"] = proto;
    }
    if (headers["x-request-start"] === undefined) {
      headers["x-request-start"] = String(x.startMs);
    }
    headers["x-vcap-request-id"] = requestId;
    headers["traceparent"] = traceparent(headers["traceparent"], requestId);
    let sticky: string | undefined;
    const cookie = headers["cookie"];
    if (cookie !== undefined && cookie.includes("__VCAP_ID__=")) {
      sticky = stickyTarget(cookie, stickyNames);
    }
    if (
      upgrade !== undefined && upgrade.toLowerCase() === "websocket"
    ) {
      return proxyWebSocket(req, x, pool, {
        ctx,
        pick: () =>
          pool.pick(
            ctx.clock.now(),
            undefined,
            pool.balancing ?? settings.balancing,
            settings.maxConns,
          ),
        finish,
        errorResponse,
        relays,
      });
    }
    return forward(req, x, pool, sticky);
  }

  return {
    handle,
    sweep(now: number) {
      for (const e of inflight) {
        if (now - e.started > settings.requestTimeoutMs) {
          inflight.delete(e);
          e.conn?.destroy(
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

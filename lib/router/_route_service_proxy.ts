/**
 * Route services in the data path, as gorouter's `handlers/routeservice.go`
 * and the route-service branch of `proxy/round_tripper/proxy_round_tripper.go`:
 *
 * - A request for a route bound to a route service that carries no
 *   `X-CF-Proxy-Signature` goes to the service: signed `X-CF-Forwarded-Url`
 *   (`https://` + host + request target, or `http://` when
 *   `route_services_recommend_https` is off), `X-CF-Proxy-Signature`,
 *   `X-CF-Proxy-Metadata`; body and response streamed; dial and handshake
 *   failures retried up to `route_services.max_attempts`; gorouter's error
 *   statuses (502 `endpoint_failure (...)`, 525, 526, 504 on timeout).
 * - A request that carries a signature came back from the service: the
 *   signature must decrypt (current or previous secret), be younger than
 *   `route_services_timeout`, and its forwarded URL must name this route;
 *   then the three headers are removed and the request goes to the app.
 *   Otherwise 502 (504 when expired) "Failed to validate Route Service
 *   Signature", as gorouter.
 * - No secret configured: 502 `route_service_unsupported`; WebSocket
 *   upgrades: 503 `route_service_unsupported`.
 * @module
 */
import http from "node:http";
import { isIP } from "node:net";
import tls from "node:tls";
import type { Clock, TimerId } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { Pool } from "./_pool.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import type { AttemptFailure, Exchange, Recorder } from "./_record.ts";
import type { Transports } from "./_transport.ts";
import { codedError, phaseOf } from "./_transport.ts";
import { classifyFailure, failureReason, failureStatus } from "./_fails.ts";
import { HOP_RESPONSE, hostname } from "./_headers.ts";
import { pumpBody } from "./_attempt.ts";
import {
  HEADER_FORWARDED_URL,
  HEADER_METADATA,
  HEADER_SIGNATURE,
  RouteServiceSignatureError,
} from "./_route_service.ts";
import type { RouteServiceSigner } from "./_route_service.ts";

const LOWER_SIGNATURE = HEADER_SIGNATURE.toLowerCase();
const LOWER_METADATA = HEADER_METADATA.toLowerCase();
const LOWER_FORWARDED_URL = HEADER_FORWARDED_URL.toLowerCase();

const STATUS_TEXT: Record<number, string> = {
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  525: "SSL Handshake Failed",
  526: "Invalid SSL Certificate",
};

/** How the router talks to route services. */
export interface RouteServiceSettings {
  /** Signs and validates; undefined when `route_services_secret` is unset. */
  signer: RouteServiceSigner | undefined;
  /** `X-CF-Forwarded-Url` scheme https (true) or http. */
  recommendHttps: boolean;
  /** Attempts per request when the service cannot be reached. */
  maxAttempts: number;
  /** Whole-request time limit (`request_timeout`), ms since arrival. */
  requestTimeoutMs: number;
  /** Trusted roots for route-service certificates (system store when absent). */
  ca?: string;
  /** `route_services.skip_ssl_validation`: accept any certificate. */
  skipSslValidation: boolean;
  /** Client certificate chain and key presented to route services. */
  cert?: string;
  key?: string;
}

/** Options of {@linkcode RouteServices}. */
export interface RouteServiceOptions {
  registry: Registry;
  recorder: Recorder;
  transports: Transports;
  stats: RouterStats;
  logger: Logger;
  clock: Clock;
  settings: RouteServiceSettings;
}

/** The route-service step of the data path. */
export class RouteServices {
  readonly #o: RouteServiceOptions;
  readonly #tls: tls.ConnectionOptions;

  /** @param options Registry, recorder, transports and settings. */
  constructor(options: RouteServiceOptions) {
    this.#o = options;
    const s = options.settings;
    this.#tls = {
      // gorouter trusts ca_certs plus the system pool.
      ca: s.ca === undefined ? undefined : [...tls.rootCertificates, s.ca],
      rejectUnauthorized: !s.skipSslValidation,
      cert: s.cert,
      key: s.key,
      minVersion: "TLSv1.2",
    };
  }

  /**
   * Handles a request whose route (`x.pool`) is bound to `serviceUrl`.
   *
   * @returns The answer (the service's response or an error), or undefined
   *   when the request came back from the service with a valid signature:
   *   the caller then routes it to the app (the three headers removed).
   */
  intercept(
    x: Exchange,
    req: Request,
    hostHeader: string,
    serviceUrl: string,
  ): Response | Promise<Response> | undefined {
    const { settings, logger } = this.#o;
    const signer = settings.signer;
    if (signer === undefined) {
      logger.info("route-service-unsupported", { route: x.pool?.uri });
      return this.#error(
        x,
        502,
        "route_service_unsupported",
        "Support for route services is disabled.",
      );
    }
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
      logger.info("route-service-unsupported", { route: x.pool?.uri });
      return this.#error(
        x,
        503,
        "route_service_unsupported",
        "Websocket requests are not supported for routes bound to Route Services.",
      );
    }
    const signature = req.headers.get(LOWER_SIGNATURE) ?? "";
    if (signature !== "") {
      try {
        const c = signer.verify(
          signature,
          req.headers.get(LOWER_METADATA) ?? "",
          this.#o.clock.now(),
        );
        this.#checkRoute(c.forwardedUrl, x.pool!);
      } catch (err) {
        const expired = err instanceof RouteServiceSignatureError &&
          err.expired;
        logger.warn("signature-validation-failed", {
          route: x.pool?.uri,
          error: describeError(err),
        });
        return this.#error(
          x,
          expired ? 504 : 502,
          "",
          `Failed to validate Route Service Signature: ${
            (err as Error).message
          }`,
        );
      }
      // The app must not see them.
      removeHeaders(
        x.headers,
        LOWER_SIGNATURE,
        LOWER_METADATA,
        LOWER_FORWARDED_URL,
      );
      return undefined;
    }
    let target: URL;
    try {
      target = new URL(serviceUrl);
    } catch {
      logger.error("route-service-failed", {
        route: x.pool?.uri,
        error: "route_service_url is not a URL",
      });
      return this.#error(x, 500, "", "Route service request failed.");
    }
    const forwardedUrl = `${settings.recommendHttps ? "https" : "http"}://${
      hostWithoutPort(hostHeader)
    }${x.path}`;
    const signed = signer.sign(forwardedUrl, this.#o.clock.now());
    const headers = x.headers;
    removeHeaders(
      headers,
      "host",
      LOWER_SIGNATURE,
      LOWER_METADATA,
      LOWER_FORWARDED_URL,
    );
    headers.push(
      "host",
      target.host,
      LOWER_SIGNATURE,
      signed.signature,
      LOWER_METADATA,
      signed.metadata,
      LOWER_FORWARDED_URL,
      forwardedUrl,
    );
    const body = req.body;
    if (body !== null && !req.headers.has("content-length")) {
      headers.push("transfer-encoding", "chunked");
    }
    x.body = body;
    return this.#forward(x, target);
  }

  /**
   * The signature's forwarded URL must lead to the request's own route
   * (gorouter's `validateRouteServicePool`: same host and context path).
   */
  #checkRoute(forwardedUrl: string, pool: Pool): void {
    let u: URL;
    try {
      u = new URL(forwardedUrl);
    } catch {
      throw new RouteServiceSignatureError(
        false,
        `forwarded URL "${forwardedUrl}" in the signature is not a URL`,
      );
    }
    const host = hostname(u.host);
    const found = this.#o.registry.lookup(host, u.pathname);
    if (found === undefined) {
      throw new RouteServiceSignatureError(
        false,
        `original request URL ${host}${u.pathname} does not exist in the routing table`,
      );
    }
    if (found !== pool) {
      throw new RouteServiceSignatureError(
        false,
        `route service forwarded URL ${pool.uri} does not match the original request URL ${host}${u.pathname}`,
      );
    }
  }

  /** Sends the request to the service, retrying what never reached it. */
  async #forward(x: Exchange, target: URL): Promise<Response> {
    const { settings, stats, logger } = this.#o;
    for (let attempt = 0;; attempt++) {
      x.attempt = attempt;
      const out = await this.#attempt(x, target);
      if (out instanceof Response) return out;
      const kind = classifyFailure(out.err, out.phase);
      const unsent = out.phase === "dial" || out.phase === "handshake";
      if (out.phase !== "response") x.failed++;
      logger.warn("route-service-connection-failed", {
        route: x.pool?.uri,
        route_service: target.origin,
        kind,
        code: failureReason(out.err, kind),
        phase: out.phase,
        error: describeError(out.err),
      });
      if (unsent && attempt + 1 < settings.maxAttempts) {
        stats.retries++;
        continue;
      }
      stats.badGateways++;
      const status = out.phase === "response" ? 502 : failureStatus(kind);
      return this.#o.recorder.errorResponse(
        x,
        status,
        `endpoint_failure (${failureReason(out.err, kind)})`,
        `${status} ${
          STATUS_TEXT[status] ?? "Bad Gateway"
        }: route service failure`,
      );
    }
  }

  /** One attempt: the service's response (streamed), or how it failed. */
  #attempt(x: Exchange, target: URL): Promise<Response | AttemptFailure> {
    const { transports, clock, recorder, settings } = this.#o;
    const secure = target.protocol === "https:";
    const host = target.hostname.replace(/^\[|\]$/g, "");
    const port = Number(target.port) || (secure ? 443 : 80);
    return new Promise((resolve) => {
      let settled = false;
      let timer: TimerId | undefined;
      const stop = () => {
        if (timer !== undefined) clock.clearTimeout(timer);
        timer = undefined;
      };
      const fail = (f: AttemptFailure) => {
        stop();
        if (settled) return;
        settled = true;
        resolve(f);
      };
      const socket = transports.connect({
        host,
        port,
        ...(secure ? this.#tls : {}),
        servername: secure && isIP(host) === 0 ? host : undefined,
      }, secure);
      const creq = http.request({
        createConnection: () => socket,
        method: x.method,
        path: `${target.pathname}${target.search}`,
        headers: x.headers,
        setHost: false,
      });
      const left = settings.requestTimeoutMs - (clock.now() - x.startMs);
      timer = clock.setTimeout(() => {
        timer = undefined;
        creq.destroy(
          codedError("ERR_ROUTER_REQUEST_TIMEOUT", "Request timed out"),
        );
      }, Math.max(0, left));
      creq.on("error", (err) => fail({ err, phase: phaseOf(socket) }));
      const body = x.body ?? null;
      if (body === null) creq.end();
      else {
        // Only once the service is reached, so a failed dial leaves the
        // body for the next attempt.
        socket.once(
          secure ? "secureConnect" : "connect",
          () => pumpBody(body, creq, x),
        );
      }
      creq.on("response", (res) => {
        const status = res.statusCode ?? 502;
        if (status < 200 || status > 599) {
          res.destroy();
          fail({
            err: new RangeError(`route service answered with status ${status}`),
            phase: "response",
          });
          return;
        }
        settled = true;
        const headers: [string, string][] = [];
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) {
          if (!HOP_RESPONSE.has(raw[i]!.toLowerCase())) {
            headers.push([raw[i]!, raw[i + 1]!]);
          }
        }
        headers.push(["x-vcap-request-id", x.requestId]);
        const done = () => {
          stop();
          if (x.status === 0) recorder.finish(x, status);
        };
        if (x.method === "HEAD" || status === 204 || status === 304) {
          res.resume();
          res.on("end", done);
          resolve(new Response(null, { status, headers }));
          return;
        }
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            res.on("data", (chunk: Uint8Array) => {
              x.bytesOut += chunk.length;
              controller.enqueue(new Uint8Array(chunk));
              if ((controller.desiredSize ?? 1) <= 0) res.pause();
            });
            res.on("end", () => {
              done();
              try {
                controller.close();
              } catch {
                // cancelled by the client
              }
            });
            res.on("error", (err) => {
              done();
              try {
                controller.error(err);
              } catch {
                // already closed
              }
            });
          },
          pull() {
            res.resume();
          },
          cancel() {
            creq.destroy();
            done();
          },
        }, { highWaterMark: 4 });
        resolve(new Response(stream, { status, headers }));
      });
    });
  }

  #error(
    x: Exchange,
    status: number,
    routerError: string,
    message: string,
  ): Response {
    return this.#o.recorder.errorResponse(
      x,
      status,
      routerError,
      `${status} ${STATUS_TEXT[status] ?? ""}: ${message}`,
    );
  }
}

/** gorouter's `hostWithoutPort`: everything before the first colon. */
function hostWithoutPort(host: string): string {
  const i = host.indexOf(":");
  return i === -1 ? host : host.slice(0, i);
}

/** Removes every `[name, value]` pair named one of `names` (lowercase). */
function removeHeaders(headers: string[], ...names: string[]): void {
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    if (names.includes(headers[r]!)) continue;
    headers[w++] = headers[r]!;
    headers[w++] = headers[r + 1]!;
  }
  headers.length = w;
}

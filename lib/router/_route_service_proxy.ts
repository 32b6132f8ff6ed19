/**
 * Route services in the data path, as gorouter's `handlers/routeservice.go`
 * (the connection to the service is `_route_service_client.ts`, the
 * signature `_route_service.ts`):
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
import type { Clock } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { Pool } from "./_pool.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import type { Exchange, Recorder } from "./_record.ts";
import type { Transports } from "./_transport.ts";
import { hostname } from "./_headers.ts";
import { RouteServiceClient, STATUS_TEXT } from "./_route_service_client.ts";
import type { RouteServiceClientSettings } from "./_route_service_client.ts";
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

/** Route-service settings of the data path. */
export interface RouteServiceSettings extends RouteServiceClientSettings {
  /** Signs and validates; undefined when `route_services_secret` is unset. */
  signer: RouteServiceSigner | undefined;
  /** `X-CF-Forwarded-Url` scheme https (true) or http. */
  recommendHttps: boolean;
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
  readonly #client: RouteServiceClient;

  /** @param options Registry, recorder, transports and settings. */
  constructor(options: RouteServiceOptions) {
    this.#o = options;
    this.#client = new RouteServiceClient(options);
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
    return this.#client.forward(x, target);
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

/**
 * The connection to a route service (gorouter's route-service branch of
 * `proxy/round_tripper/proxy_round_tripper.go`): one `node:http` request per
 * attempt over a socket from `Transports.connect` (dial and handshake
 * timeouts, phase tags), the body sent only once the service is reached, so
 * dial and handshake failures are retried up to `max_attempts`; the answer
 * streamed back; gorouter's error statuses otherwise.
 * @module
 */
import http from "node:http";
import { isIP } from "node:net";
import tls from "node:tls";
import type { Clock, TimerId } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { RouterStats } from "./_stats.ts";
import type { AttemptFailure, Exchange, Recorder } from "./_record.ts";
import type { Transports } from "./_transport.ts";
import { codedError, phaseOf } from "./_transport.ts";
import {
  classifyFailure,
  failureBody,
  failureReason,
  failureStatus,
} from "./_fails.ts";
import { HOP_RESPONSE } from "./_headers.ts";
import { pumpBody } from "./_attempt.ts";

/** Reason phrases of the statuses route-service answers use. */
export const STATUS_TEXT: Record<number, string> = {
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  525: "SSL Handshake Failed",
  526: "Invalid SSL Certificate",
};

/** How the router connects to route services. */
export interface RouteServiceClientSettings {
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

/** Options of {@linkcode RouteServiceClient}. */
export interface RouteServiceClientOptions {
  recorder: Recorder;
  transports: Transports;
  stats: RouterStats;
  logger: Logger;
  clock: Clock;
  settings: RouteServiceClientSettings;
}

/** Sends requests to route services. */
export class RouteServiceClient {
  readonly #o: RouteServiceClientOptions;
  readonly #tls: tls.ConnectionOptions;

  /** @param options Transports, recorder, metrics and settings. */
  constructor(options: RouteServiceClientOptions) {
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

  /** Sends the request to the service, retrying what never reached it. */
  async forward(x: Exchange, target: URL): Promise<Response> {
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
        // The same error handler as for apps in gorouter.
        failureBody(status),
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
        resolve(
          toResponse(res, x, () => {
            stop();
            if (x.status === 0) recorder.finish(x, status);
          }, () => creq.destroy()),
        );
      });
    });
  }
}

/**
 * The client's Response for the route service's answer: hop-by-hop headers
 * dropped, the body streamed with backpressure. `done` runs once when the
 * body ended, broke off or the client went away; `abort` closes the
 * connection to the service.
 */
function toResponse(
  res: http.IncomingMessage,
  x: Exchange,
  done: () => void,
  abort: () => void,
): Response {
  const status = res.statusCode!;
  const headers: [string, string][] = [];
  const raw = res.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_RESPONSE.has(raw[i]!.toLowerCase())) {
      headers.push([raw[i]!, raw[i + 1]!]);
    }
  }
  headers.push(["x-vcap-request-id", x.requestId]);
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    done();
  };
  if (x.method === "HEAD" || status === 204 || status === 304) {
    res.on("close", finish);
    res.resume();
    return new Response(null, { status, headers });
  }
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      res.on("data", (chunk: Uint8Array) => {
        x.bytesOut += chunk.length;
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 1) <= 0) res.pause();
      });
      res.on("end", () => {
        finish();
        try {
          controller.close();
        } catch {
          // cancelled by the client
        }
      });
      // A connection that closes before the end (reset, request timeout)
      // ends the client's body with an error instead of leaving it open.
      res.on("close", () => {
        if (res.complete) return;
        finish();
        try {
          controller.error(
            codedError("ECONNRESET", "Route service closed the response early"),
          );
        } catch {
          // already closed
        }
      });
    },
    pull() {
      res.resume();
    },
    cancel() {
      abort();
      finish();
    },
  }, { highWaterMark: 4 });
  return new Response(stream, { status, headers });
}

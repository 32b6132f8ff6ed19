/**
 * The per-request record every step of the data path fills in (the access
 * log writes it), and the {@linkcode Recorder} that closes it: metrics plus
 * the access-log line, once per request, and the router's own error answers.
 *
 * A leaf of the request path: `_request.ts`, `_exchange.ts`, `_attempt.ts`
 * and `_websocket.ts` all use it, it uses none of them.
 * @module
 */
import type { Endpoint, Pool } from "./_pool.ts";
import type { RouterStats } from "./_stats.ts";
import type { Phase } from "./_transport.ts";

/** Per-request state, from `Deno.serve` to the access log. */
export interface Exchange {
  /** `performance.now()` when the request arrived (for its duration). */
  start: number;
  /** Clock time when the request arrived (X-Request-Start, request timeout). */
  startMs: number;
  method: string;
  host: string;
  path: string;
  remote: string;
  proto: string;
  requestId: string;
  /** Forwarded request headers as `[name, value, name, value, ...]`. */
  headers: string[];
  userAgent: string;
  referer: string;
  forwardedFor: string;
  forwardedProto: string;
  bytesIn: number;
  bytesOut: number;
  /** Attempts that failed without a response. */
  failed: number;
  /** The endpoint of the current (last) attempt. */
  ep: Endpoint | undefined;
  routerError: string;
  /** Final status, 0 until the request is recorded. */
  status: number;
  /** The route's pool, once looked up. */
  pool?: Pool;
  /** The client's request body (kept whole until a backend proved itself). */
  body?: ReadableStream<Uint8Array> | null;
  /** The client's request, when it asks for a WebSocket upgrade. */
  upgrade?: Request;
  /** Instance id the `__VCAP_ID__` cookie pins the request to. */
  sticky?: string;
  /** `Authorization: Negotiate`: only the `sticky` instance may answer. */
  mustBeSticky?: boolean;
  /** The one endpoint `X-CF-App-Instance` names: no other is tried. */
  pinned?: Endpoint;
  /** `Idempotency-Key` / `X-Idempotency-Key` sent: retriable like a GET. */
  idempotencyKey?: boolean;
  /** 0 for the first attempt of the exchange. */
  attempt?: number;
}

/**
 * How far a failed attempt got: the connection {@linkcode Phase}, or
 * `"response"` when the backend's response head had arrived and the body
 * broke off (too late to retry, too early to have answered the client).
 */
export type AttemptPhase = Phase | "response";

/** An attempt that ended without a response for the client. */
export interface AttemptFailure {
  err: unknown;
  phase: AttemptPhase;
}

/** What one attempt reports: the client's response, or how it failed. */
export type AttemptOutcome = Response | AttemptFailure;

/** Runs one attempt of an exchange against one endpoint (HTTP or WebSocket). */
export interface Attempter {
  attempt(x: Exchange, ep: Endpoint): Promise<AttemptOutcome>;
}

/** Where finished requests go (the access log). */
export interface ExchangeSink {
  write(x: Exchange, status: number, seconds: number): void;
}

/**
 * Closes requests: counts them, writes their access-log line, and builds the
 * router's own plain-text error answers.
 */
export class Recorder {
  readonly #stats: RouterStats;
  readonly #log: ExchangeSink | undefined;

  /**
   * @param stats Metrics (requests by status, latency).
   * @param log The access log, when enabled.
   */
  constructor(stats: RouterStats, log: ExchangeSink | undefined) {
    this.#stats = stats;
    this.#log = log;
  }

  /** Records the request as answered with `status` (once per request). */
  finish(x: Exchange, status: number): void {
    x.status = status;
    const seconds = (performance.now() - x.start) / 1000;
    this.#stats.observe(status, seconds);
    this.#log?.write(x, status, seconds);
  }

  /**
   * The router's own answer (`X-Cf-Routererror` names why), recorded.
   *
   * @param routerError `X-Cf-Routererror` value; empty for none.
   * @param body Text of the answer (a newline is added).
   * @param cacheControl `Cache-Control` value, when the answer sets one.
   */
  errorResponse(
    x: Exchange,
    status: number,
    routerError: string,
    body: string,
    cacheControl?: string,
  ): Response {
    x.routerError = routerError;
    this.finish(x, status);
    // As gorouter's errorwriter: text, never sniffed as HTML (the body may
    // quote the Host header).
    const headers: [string, string][] = [
      ["content-type", "text/plain; charset=utf-8"],
      ["x-content-type-options", "nosniff"],
      ["x-vcap-request-id", x.requestId],
    ];
    if (routerError !== "") headers.push(["x-cf-routererror", routerError]);
    if (cacheControl !== undefined) {
      headers.push(["cache-control", cacheControl]);
    }
    return new Response(body + "\n", { status, headers });
  }
}

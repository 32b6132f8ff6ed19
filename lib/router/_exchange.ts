/**
 * One exchange per request: choose an endpoint, run one attempt on it (HTTP
 * or WebSocket, which only report their outcome), classify a failure, decide
 * (`_decide.ts`) whether to retry on another endpoint or answer, and write
 * the error answer. The one retry loop of the router.
 * @module
 */
import type { Logger } from "../observe/mod.ts";
import type { Clock } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { Balancing, Endpoint, Pool } from "./_pool.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import type { RouteEvents } from "./_events.ts";
import type {
  Attempter,
  AttemptFailure,
  Exchange,
  Recorder,
} from "./_record.ts";
import { classifyFailure, failureBody, failureReason } from "./_fails.ts";
import type { FailureKind } from "./_fails.ts";
import { decide } from "./_decide.ts";

/** Words for the certificate failures a 526 names. */
const CERT_DETAIL: Record<string, string> = {
  CERT_HAS_EXPIRED: "certificate expired",
  CERT_NOT_YET_VALID: "certificate not yet valid",
  CERT_REVOKED: "certificate revoked",
};

/** Settings of the exchange, resolved to numbers. */
export interface ExchangeSettings {
  maxAttempts: number;
  maxConns: number;
  failureCooldownMs: number;
  balancing: Balancing;
}

/** Options of {@linkcode Exchanges}. */
export interface ExchangeOptions {
  registry: Registry;
  recorder: Recorder;
  stats: RouterStats;
  logger: Logger;
  clock: Clock;
  settings: ExchangeSettings;
  /** Runs HTTP attempts. */
  http: Attempter;
  /** Runs WebSocket attempts (requests with `x.upgrade`). */
  websocket: Attempter;
  /** True once the router's shutdown cut backend connections. */
  shuttingDown: () => boolean;
  /** Recent prunes and last errors, for the status page. */
  events?: RouteEvents;
  /** Names a refused chain's real reason (expired) when TLS did not. */
  explainUntrusted?: (ep: Endpoint, err: unknown) => Promise<unknown>;
}

/** Runs exchanges: the retry loop over attempts. */
export class Exchanges {
  readonly #o: ExchangeOptions;

  /** @param options Registry, attempters, metrics and settings. */
  constructor(options: ExchangeOptions) {
    this.#o = options;
  }

  /**
   * Answers a request whose route was found (`x.pool` set): the backend's
   * response, or the router's error answer.
   */
  run(x: Exchange): Response | Promise<Response> {
    const pool = x.pool!;
    const first = x.pinned ?? this.#choose(x, pool, undefined);
    // No endpoint to start with: answered at once, no Promise.
    if (first instanceof Response) return first;
    return this.#loop(x, pool, first);
  }

  async #loop(x: Exchange, pool: Pool, first: Endpoint): Promise<Response> {
    const o = this.#o;
    const websocket = x.upgrade !== undefined;
    const attempter = websocket ? o.websocket : o.http;
    // X-CF-App-Instance names one endpoint: gorouter's surgical pool.
    const maxAttempts = x.pinned !== undefined
      ? 1
      : Math.min(o.settings.maxAttempts, pool.size);
    let tried: Endpoint[] | undefined;
    let ep: Endpoint | undefined = first;
    x.attempt = 0;
    try {
      for (;;) {
        x.ep = ep;
        const out = await attempter.attempt(x, ep);
        if (out instanceof Response) return out;
        let kind = classifyFailure(out.err, out.phase);
        if (kind === "untrusted" && ep.tls && o.explainUntrusted) {
          out.err = await o.explainUntrusted(ep, out.err);
          kind = classifyFailure(out.err, out.phase);
        }
        const d = decide({ kind, phase: out.phase, tls: ep.tls }, x.attempt, {
          method: x.method,
          hasBody: x.body !== null && x.body !== undefined,
          idempotencyKey: x.idempotencyKey === true,
          websocket,
          maxAttempts,
          shuttingDown: o.shuttingDown(),
        });
        if (out.phase !== "response") x.failed++;
        if (websocket) o.stats.websocketFailures++;
        if (d.endpoint !== "keep") {
          this.#blame(pool, ep, out, kind, d.endpoint, websocket);
        }
        if (d.next === "answer") return this.#answer(x, out, kind, d.status);
        o.stats.retries++;
        (tried ??= []).push(ep);
        ep = this.#choose(x, pool, tried);
        if (ep === undefined) return this.#answer(x, out, kind, d.status);
        x.attempt++;
      }
    } catch (err) {
      // A bug must not escape as a 500 from Deno.serve without a trace.
      o.logger.error("request-failed", { error: describeError(err) });
      return o.recorder.errorResponse(
        x,
        502,
        "",
        "502 Bad Gateway: internal error",
      );
    }
  }

  /**
   * The first endpoint (the sticky one when usable) or the 503 answer; on a
   * retry, the next untried endpoint or undefined.
   */
  #choose(x: Exchange, pool: Pool, tried: undefined): Endpoint | Response;
  #choose(x: Exchange, pool: Pool, tried: Endpoint[]): Endpoint | undefined;
  #choose(
    x: Exchange,
    pool: Pool,
    tried: Endpoint[] | undefined,
  ): Endpoint | Response | undefined {
    const { settings, clock, stats, recorder } = this.#o;
    if (x.sticky !== undefined && tried === undefined) {
      const pinned = pool.findInstance(x.sticky);
      if (
        pinned !== undefined && pinned.inflight < settings.maxConns &&
        pinned.failedUntil <= clock.now()
      ) return pinned;
    }
    if (x.mustBeSticky) {
      // gorouter's round robin with mustBeSticky: that instance even when
      // it failed lately, never another; missing or full, it is
      // NoEndpointsAvailable, which its error handler answers with a 502.
      if (tried !== undefined) return undefined;
      const pinned = pool.findInstance(x.sticky!);
      if (pinned !== undefined && pinned.inflight < settings.maxConns) {
        return pinned;
      }
      return recorder.errorResponse(
        x,
        502,
        "endpoint_failure (No endpoints available)",
        failureBody(502),
      );
    }
    const picked = pool.pick(
      clock.now(),
      tried,
      pool.balancing ?? settings.balancing,
      settings.maxConns,
    );
    if (typeof picked !== "string") return picked;
    if (tried !== undefined) return undefined;
    if (picked === "exhausted") {
      stats.backendExhaustedConns++;
      return recorder.errorResponse(
        x,
        503,
        "Connection Limit Reached",
        "503 Service Unavailable: connection limit reached",
      );
    }
    return recorder.errorResponse(
      x,
      503,
      "no_endpoints",
      "503 Service Unavailable: no endpoints",
    );
  }

  /** Counts, logs, and prunes or cools down the endpoint that failed. */
  #blame(
    pool: Pool,
    ep: Endpoint,
    f: AttemptFailure,
    kind: FailureKind,
    fate: "prune" | "cooldown",
    websocket: boolean,
  ): void {
    const { stats, events, registry } = this.#o;
    if (kind === "identity") stats.backendInvalidId++;
    else if (kind === "untrusted") stats.backendInvalidTlsCert++;
    else if (kind === "handshake") stats.backendTlsHandshakeFailed++;
    const code = failureReason(f.err, kind);
    const now = this.#o.clock.now();
    events?.failed(ep, kind, code, now);
    this.#o.logger.warn("backend-failed", {
      backend: ep.key,
      instance: ep.instanceId,
      route: pool.uri,
      kind,
      code,
      ...(CERT_DETAIL[code] ? { error: describeError(f.err) } : {}),
      phase: f.phase,
      websocket,
      pruned: fate === "prune",
    });
    if (fate === "prune") {
      if (registry.prune(pool, ep)) {
        stats.routesPruned.inc({ reason: kind });
        events?.pruned(pool, ep, kind, code, now);
      }
    } else {
      ep.failedUntil = now + this.#o.settings.failureCooldownMs;
    }
  }

  /** The error answer for a request whose last attempt failed. */
  #answer(
    x: Exchange,
    f: AttemptFailure,
    kind: FailureKind,
    status: number,
  ): Response {
    this.#o.stats.badGateways++;
    const reason = failureReason(f.err, kind);
    const detail = CERT_DETAIL[reason] ? ` (${CERT_DETAIL[reason]})` : "";
    const body = f.phase === "response"
      ? "502 Bad Gateway: backend failed mid-response"
      : failureBody(status) + detail;
    return this.#o.recorder.errorResponse(
      x,
      status,
      `endpoint_failure (${reason})`,
      body,
    );
  }
}

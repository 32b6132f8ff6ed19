/**
 * What the router does after a failed attempt: retry on another endpoint or
 * answer the client, and whether the endpoint is pruned, cooled down or left
 * alone. A pure function of the failure, the attempt number and the request,
 * so the whole policy is one table (tests/router/decide_test.ts), like
 * gorouter's `proxy/fails/classifier_group.go` (retriable and prunable
 * groups) and the retry check in `proxy/round_tripper/proxy_round_tripper.go`.
 * @module
 */
import type { FailureKind } from "./_fails.ts";
import { failureStatus, isPrunable } from "./_fails.ts";
import type { AttemptPhase } from "./_record.ts";

/** What is known about the failed attempt. */
export interface FailureFacts {
  kind: FailureKind;
  phase: AttemptPhase;
  /** The endpoint was dialed over TLS (only TLS endpoints are pruned). */
  tls: boolean;
}

/** What is known about the request. */
export interface RequestFacts {
  method: string;
  /** The client sent a body (it cannot be replayed once streamed). */
  hasBody: boolean;
  /** An `Idempotency-Key` or `X-Idempotency-Key` header was sent. */
  idempotencyKey: boolean;
  websocket: boolean;
  /** Attempts allowed for this request (`max_attempts`, at most the pool size). */
  maxAttempts: number;
  /** The router's own shutdown cut the attempt. */
  shuttingDown: boolean;
}

/** The verdict on a failed attempt. */
export interface Decision {
  next: "retry" | "answer";
  /** What happens to the endpoint that failed. */
  endpoint: "prune" | "cooldown" | "keep";
  /** Status of the answer when `next` is "answer" (or no endpoint is left). */
  status: number;
}

/**
 * Methods gorouter retries after a reset: its `isIdempotent`, which matches
 * Go's `isReplayable` (not PUT or DELETE, though RFC 9110 calls them
 * idempotent: an app's PUT is not always safe to apply twice). Any method
 * with an `Idempotency-Key` header is retried too.
 */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/**
 * Decides what follows a failed attempt.
 *
 * - The router's own shutdown: answer, and do not blame the endpoint.
 * - A body that broke off after the response head: answer 502, no blame
 *   (the backend was reachable and proved its identity).
 * - Otherwise the endpoint is pruned (TLS endpoint, prunable kind) or cooled
 *   down, and the request is retried when that is safe and attempts remain.
 *   Safe: no request byte can have reached the backend (dial, handshake), or
 *   an idempotent HTTP request without a body got a reset or no answer.
 *
 * @param f The failed attempt.
 * @param attempt Its number, 0 for the first.
 * @param r The request.
 * @returns Retry or answer, the endpoint's fate, the answer's status.
 *
 * @example
 * ```ts
 * import { decide } from "./_decide.ts";
 * const d = decide({ kind: "dial", phase: "dial", tls: true }, 0, {
 *   method: "POST", hasBody: true, idempotencyKey: false, websocket: false, maxAttempts: 3,
 *   shuttingDown: false,
 * });
 * console.assert(d.next === "retry" && d.endpoint === "prune");
 * ```
 */
export function decide(
  f: FailureFacts,
  attempt: number,
  r: RequestFacts,
): Decision {
  const status = f.phase === "response" ? 502 : failureStatus(f.kind);
  if (r.shuttingDown || f.phase === "response") {
    return { next: "answer", endpoint: "keep", status };
  }
  const endpoint = f.tls && isPrunable(f.kind) ? "prune" : "cooldown";
  const safe = f.phase !== "sent" ||
    (!r.websocket && !r.hasBody &&
      (IDEMPOTENT.has(r.method) || r.idempotencyKey) &&
      (f.kind === "reset" || f.kind === "other"));
  const next = safe && attempt + 1 < r.maxAttempts ? "retry" : "answer";
  return { next, endpoint, status };
}

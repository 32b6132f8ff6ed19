/**
 * Pure scheduling arithmetic: when a certificate is due, with jitter, and the
 * retry backoff while the CA is unavailable.
 * @module
 */

/** Where in a certificate's life to renew. */
export type RenewPoint =
  | { kind: "fraction"; fraction: number }
  | { kind: "before-expiry"; beforeExpiryMs: number };

/** The default renewal point: two thirds of the lifetime. */
export const DEFAULT_RENEW_FRACTION = 0.667;

/**
 * The nominal (unjittered) renewal time of a certificate. A duration before
 * expiry that is not shorter than the lifetime falls back to two thirds.
 *
 * @example
 * ```ts
 * import { renewalTime } from "./_schedule.ts";
 * const t = renewalTime(0, 90_000, { kind: "fraction", fraction: 2 / 3 });
 * console.assert(t === 60_000);
 * ```
 */
export function renewalTime(
  notBefore: number,
  notAfter: number,
  at: RenewPoint,
): number {
  const lifetime = Math.max(0, notAfter - notBefore);
  if (at.kind === "before-expiry" && at.beforeExpiryMs < lifetime) {
    return notAfter - at.beforeExpiryMs;
  }
  const fraction = at.kind === "fraction"
    ? at.fraction
    : DEFAULT_RENEW_FRACTION;
  return notBefore + Math.round(lifetime * fraction);
}

/**
 * The jittered renewal time: the stretch from `notBefore` to the nominal time
 * is scaled by a random factor in `[1 - jitter, 1 + jitter]`, and the result
 * always stays before `notAfter`.
 *
 * @param random A value in `[0, 1)`.
 * @example
 * ```ts
 * import { jitteredRenewalTime } from "./_schedule.ts";
 * const at = { kind: "fraction" as const, fraction: 0.5 };
 * console.assert(jitteredRenewalTime(0, 100, at, 0.1, 0.5) === 50);
 * ```
 */
export function jitteredRenewalTime(
  notBefore: number,
  notAfter: number,
  at: RenewPoint,
  jitter: number,
  random: number,
): number {
  const nominal = renewalTime(notBefore, notAfter, at);
  const span = nominal - notBefore;
  const factor = 1 + jitter * (2 * random - 1);
  const t = notBefore + Math.round(span * factor);
  return Math.min(
    t,
    notAfter - Math.max(1, Math.round((notAfter - nominal) / 2)),
  );
}

/** Backoff settings (milliseconds). */
export interface Backoff {
  initial: number;
  max: number;
  /** Each delay is shortened by up to this fraction at random. */
  jitter: number;
}

/**
 * Delay before retry number `attempt` (1 = first retry): `initial` doubling per
 * attempt, capped at `max`, then shortened by up to `jitter` at random so it
 * never exceeds the cap.
 *
 * @param random A value in `[0, 1)`.
 * @example
 * ```ts
 * import { backoffDelay } from "./_schedule.ts";
 * const b = { initial: 1000, max: 300_000, jitter: 0 };
 * console.assert(backoffDelay(b, 1, 0) === 1000 && backoffDelay(b, 3, 0) === 4000);
 * console.assert(backoffDelay(b, 40, 0) === 300_000);
 * ```
 */
export function backoffDelay(
  backoff: Backoff,
  attempt: number,
  random: number,
): number {
  const exp = Math.min(Math.max(0, attempt - 1), 52);
  const base = Math.min(backoff.max, backoff.initial * 2 ** exp);
  return Math.max(1, Math.round(base * (1 - backoff.jitter * random)));
}

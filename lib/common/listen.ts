/** Bind failures described for operators. @module */
import { describeError } from "./errors.ts";

/**
 * Why a listener could not bind, in words an operator can act on.
 *
 * @example
 * ```ts
 * import { describeListenError } from "./listen.ts";
 * const why = describeListenError(new Deno.errors.AddrInUse("os error 98"));
 * console.assert(why.startsWith("address already in use"));
 * ```
 */
export function describeListenError(err: unknown): string {
  // Deno.serve throws Deno.errors; node:net servers emit errors with a code.
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Deno.errors.AddrInUse || code === "EADDRINUSE") {
    return "address already in use (stop the process holding it or choose another port)";
  }
  if (err instanceof Deno.errors.AddrNotAvailable || code === "EADDRNOTAVAIL") {
    return "this host has no such address";
  }
  if (err instanceof Deno.errors.PermissionDenied || code === "EACCES") {
    return "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)";
  }
  return describeError(err);
}

/**
 * The client's IP address from what `Deno.serve` hands a handler (hono's
 * `c.env` when served with `app.fetch(req, info)`), for refusal logs;
 * `undefined` in-process (`app.request()`) or on a unix socket.
 *
 * @example
 * ```ts
 * import { clientAddress } from "./listen.ts";
 * const info = { remoteAddr: { transport: "tcp", hostname: "10.0.0.7", port: 5 } };
 * console.assert(clientAddress(info) === "10.0.0.7");
 * ```
 */
export function clientAddress(info: unknown): string | undefined {
  const addr = (info as { remoteAddr?: { hostname?: unknown } } | undefined)
    ?.remoteAddr;
  return typeof addr?.hostname === "string" ? addr.hostname : undefined;
}

/**
 * Feature checks for Deno's unstable APIs.
 * @module
 */

/** How to turn on the flag {@linkcode unstableNetEnabled} checks for. */
export const UNSTABLE_NET_HINT =
  'deno run --unstable-net ..., or "unstable": ["net"] in deno.json';

/**
 * Whether Deno runs with `--unstable-net`, which SO_REUSEPORT
 * (`Deno.serve({ reusePort })`, `Deno.listenTls({ reusePort })`) needs in
 * Deno 2.9: `Deno.listenDatagram` exists only then. Without the flag those
 * calls end the process instead of throwing, so check first.
 *
 * @example
 * ```ts
 * import { unstableNetEnabled } from "./unstable.ts";
 * console.assert(typeof unstableNetEnabled() === "boolean");
 * ```
 */
export function unstableNetEnabled(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram ===
    "function";
}

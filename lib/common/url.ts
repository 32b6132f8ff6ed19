/**
 * URLs in logs and error messages.
 * @module
 */

/**
 * Hides user:password (or a token) in a URL before it is logged or shown. A
 * URL without a scheme (`user:pass@host:4222`, as NATS allows) is read as
 * `nats://`.
 *
 * @example
 * ```ts
 * import { redactUrl } from "./url.ts";
 * console.assert(redactUrl("nats://u:secret@n:4222") === "nats://***@n:4222");
 * ```
 */
export function redactUrl(server: string): string {
  try {
    const u = new URL(server.includes("://") ? server : `nats://${server}`);
    if (u.username || u.password) {
      u.username = "***";
      u.password = "";
    }
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(unparseable server url)";
  }
}

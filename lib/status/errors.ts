/** Errors of `sigil routes` and `sigil status`. @module */
import { ApplianceError } from "../common/errors.ts";

/**
 * A status endpoint cannot be read (unreachable, refused the token, not a
 * Sigil status JSON). Code: `ERR_STATUS_READ`. The message names the URL
 * with any credentials hidden, never the token.
 *
 * @example
 * ```ts
 * import { StatusReadError } from "./errors.ts";
 * const e = new StatusReadError('Cannot read "http://127.0.0.1:8082/routes": connection refused');
 * console.assert(e.code === "ERR_STATUS_READ");
 * ```
 */
export class StatusReadError extends ApplianceError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_STATUS_READ", message, options);
  }
}

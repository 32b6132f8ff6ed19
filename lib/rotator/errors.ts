/** Errors of the rotator role. @module */
import { ApplianceError } from "../common/errors.ts";

/**
 * A renewal that could not be completed. Codes:
 * `ERR_ROTATOR_TOKEN_UNREADABLE`, `ERR_ROTATOR_BUNDLE_UNREADABLE`,
 * `ERR_ROTATOR_CA_UNREACHABLE`, `ERR_ROTATOR_CA_REJECTED`,
 * `ERR_ROTATOR_CERT_INVALID`, `ERR_ROTATOR_WRITE_FAILED`,
 * `ERR_ROTATOR_UNKNOWN_INSTANCE`, `ERR_ROTATOR_METRICS_LISTEN`.
 *
 * @example
 * ```ts
 * import { RotatorError } from "./errors.ts";
 * const e = new RotatorError("ERR_ROTATOR_CERT_INVALID", 'Cannot accept certificate for "i-1": key does not match');
 * console.assert(e.name === "RotatorError");
 * ```
 */
export class RotatorError extends ApplianceError {}

/**
 * The CA answered a sign request with an error, or could not be reached.
 * `status` is the HTTP status (0 when no answer arrived); `retryAfterMs` comes
 * from a `Retry-After` header.
 *
 * @example
 * ```ts
 * import { CaRequestError } from "./errors.ts";
 * const e = new CaRequestError("ERR_ROTATOR_CA_REJECTED", "Cannot renew: CA answered 429", { status: 429 });
 * console.assert(e.status === 429);
 * ```
 */
export class CaRequestError extends RotatorError {
  readonly status: number;
  readonly caCode?: string;
  readonly retryAfterMs?: number;

  constructor(
    code: string,
    message: string,
    details: { status: number; caCode?: string; retryAfterMs?: number },
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.status = details.status;
    this.caCode = details.caCode;
    this.retryAfterMs = details.retryAfterMs;
  }
}

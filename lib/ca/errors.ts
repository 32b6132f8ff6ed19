/** Errors of the CA role. @module */
import { ApplianceError } from "../common/errors.ts";

/**
 * A CA condition callers catch. The HTTP edge maps `code` to a status:
 * `ERR_CA_REQUEST_INVALID`/`ERR_CA_CSR_INVALID`/`ERR_CA_IDENTITY_INVALID` 400,
 * `ERR_CA_UNAUTHENTICATED` 401, `ERR_CA_FORBIDDEN` 403, `ERR_CA_TOO_LARGE` 413,
 * `ERR_CA_RATE_LIMITED` 429, `ERR_CA_LEDGER_UNAVAILABLE` 503 (the shared
 * PostgreSQL ledger cannot be reached; nothing was signed). Store problems
 * (`ERR_CA_EXISTS`, `ERR_CA_NOT_FOUND`, `ERR_CA_KEY_PERMISSIONS`,
 * `ERR_CA_LEDGER`) stop the command.
 *
 * @example
 * ```ts
 * import { CaError } from "./errors.ts";
 * const e = new CaError("ERR_CA_FORBIDDEN", 'Cannot issue certificate for "i-1": app "x" is outside the token\'s claims');
 * console.assert(e.name === "CaError");
 * ```
 */
export class CaError extends ApplianceError {
  /** For `ERR_CA_RATE_LIMITED`: seconds until a retry can succeed (`Retry-After`). */
  readonly retryAfterSeconds?: number;

  constructor(
    code: string,
    message: string,
    options?: ErrorOptions & { retryAfterSeconds?: number },
  ) {
    super(code, message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** Errors of the proxy role. @module */
import { ApplianceError } from "../common/errors.ts";

/**
 * Credentials (instance certificate and key, or a trusted client CA bundle)
 * that cannot be served. Codes: `ERR_PROXY_CREDENTIALS_UNREADABLE`,
 * `ERR_PROXY_CREDENTIALS_INVALID`, `ERR_PROXY_KEY_MISMATCH`,
 * `ERR_PROXY_CERT_NOT_VALID`, `ERR_PROXY_TRUST_INVALID`.
 *
 * @example
 * ```ts
 * import { CredentialsError } from "./errors.ts";
 * const e = new CredentialsError("ERR_PROXY_KEY_MISMATCH", 'Cannot load credentials for "a7c": key does not match certificate');
 * console.assert(e.name === "CredentialsError");
 * ```
 */
export class CredentialsError extends ApplianceError {}

/**
 * A listener or the admin API cannot start (address in use, permission).
 * Code: `ERR_PROXY_LISTEN`.
 *
 * @example
 * ```ts
 * import { ListenError } from "./errors.ts";
 * console.assert(new ListenError('Cannot listen on "0.0.0.0:61001": address in use').code === "ERR_PROXY_LISTEN");
 * ```
 */
export class ListenError extends ApplianceError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_PROXY_LISTEN", message, options);
  }
}

/**
 * A route registration could not be delivered to one target. Code:
 * `ERR_PROXY_REGISTER`. The message names the target URL without credentials.
 *
 * @example
 * ```ts
 * import { RegistrationError } from "./errors.ts";
 * console.assert(new RegistrationError("Cannot register routes with \"http://127.0.0.1:8081\": HTTP 401").code === "ERR_PROXY_REGISTER");
 * ```
 */
export class RegistrationError extends ApplianceError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_PROXY_REGISTER", message, options);
  }
}

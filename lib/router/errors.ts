/** Errors of the router role. @module */
import { ApplianceError } from "../common/mod.ts";

/**
 * A router failure callers may catch: bad backend credentials, a listener that
 * cannot bind, an unusable token-verification key.
 *
 * @example
 * ```ts
 * import { RouterError } from "./errors.ts";
 * const err = new RouterError("ERR_ROUTER_BACKEND_TLS", 'Cannot load backend client certificate "/x": no such file');
 * console.assert(err.code === "ERR_ROUTER_BACKEND_TLS");
 * ```
 */
export class RouterError extends ApplianceError {}

/**
 * A registration API token was refused; `status` is 401 (missing, invalid,
 * expired), 403 (valid but lacking the `routes.write` scope) or 503 (the CA's
 * key set could not be fetched, so no token can be checked now).
 *
 * @example
 * ```ts
 * import { RouterAuthError } from "./errors.ts";
 * const err = new RouterAuthError(403, "Cannot register routes: token lacks scope \"routes.write\"");
 * console.assert(err.status === 403 && err.code === "ERR_ROUTER_FORBIDDEN");
 * ```
 */
export class RouterAuthError extends ApplianceError {
  readonly status: 401 | 403 | 503;
  constructor(
    status: 401 | 403 | 503,
    message: string,
    options?: ErrorOptions,
  ) {
    super(
      status === 401
        ? "ERR_ROUTER_UNAUTHORIZED"
        : status === 403
        ? "ERR_ROUTER_FORBIDDEN"
        : "ERR_ROUTER_AUTH_UNAVAILABLE",
      message,
      options,
    );
    this.status = status;
  }
}

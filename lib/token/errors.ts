/** Errors of the bearer-token contract. @module */
import { ApplianceError } from "../common/mod.ts";

/** Why a token was refused. */
export type TokenRefusal =
  | "missing"
  | "malformed"
  | "signature"
  | "expired"
  | "claims"
  | "forbidden"
  | "unavailable";

const CODES: Record<TokenRefusal, string> = {
  missing: "ERR_TOKEN_MISSING",
  malformed: "ERR_TOKEN_MALFORMED",
  signature: "ERR_TOKEN_SIGNATURE",
  expired: "ERR_TOKEN_EXPIRED",
  claims: "ERR_TOKEN_CLAIMS",
  forbidden: "ERR_TOKEN_FORBIDDEN",
  unavailable: "ERR_TOKEN_KEYS_UNAVAILABLE",
};

/**
 * A bearer token was refused. `reason` says why; `status` is the HTTP status
 * a service answers with: 401 (missing, malformed, badly signed, expired,
 * wrong issuer/audience/claims), 403 (valid but lacking a scope) or 503 (the
 * key set could not be fetched, so no token can be checked now). The message
 * never contains the token.
 *
 * @example
 * ```ts
 * import { TokenError } from "./errors.ts";
 * const err = new TokenError("forbidden", 'Token "p" lacks scope "routes.write"');
 * console.assert(err.status === 403 && err.code === "ERR_TOKEN_FORBIDDEN");
 * ```
 */
export class TokenError extends ApplianceError {
  readonly reason: TokenRefusal;
  /** The failing claim, for `reason: "claims"`. */
  readonly claim?: string;
  constructor(
    reason: TokenRefusal,
    message: string,
    options?: ErrorOptions & { claim?: string },
  ) {
    super(CODES[reason], message, options);
    this.reason = reason;
    this.claim = options?.claim;
  }

  /** The HTTP status a service answers with. */
  get status(): 401 | 403 | 503 {
    return this.reason === "forbidden"
      ? 403
      : this.reason === "unavailable"
      ? 503
      : 401;
  }
}

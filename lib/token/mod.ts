/**
 * The bearer-token contract between the CA (which mints tokens and publishes
 * its key at `/v1/jwks.json`) and every service that accepts them (the CA's
 * `/v1/sign`, the router's registration API, credhub): claims, scope names,
 * JWKS fetch and cache, one verifier with typed errors.
 *
 * @example
 * ```ts
 * import { createTokenVerifier, mintToken, TokenError } from "./mod.ts";
 * const tokenKeys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
 * const jwt = await mintToken({ tokenKeys }, { subject: "cell-1", scopes: ["cert.issue"], apps: ["*"], spaces: ["*"], orgs: ["*"], cidrs: ["10.0.0.0/8"] });
 * const verifier = await createTokenVerifier({ publicKey: tokenKeys.publicKey, requiredClaims: ["exp", "sub"] });
 * const claims = await verifier.verifyAuthorization(`Bearer ${jwt}`, { scopes: ["cert.issue"] });
 * console.assert(claims.subject === "cell-1");
 * const refused = await verifier.verify(jwt, { scopes: ["routes.write"] }).catch((e) => e);
 * console.assert(refused instanceof TokenError && refused.status === 403);
 * ```
 * @module
 */
export { TokenError } from "./errors.ts";
export type { TokenRefusal } from "./errors.ts";
export {
  CERT_ISSUE_SCOPE,
  CERT_ROUTER_SCOPE,
  claimsOf,
  ROUTES_READ_SCOPE,
  ROUTES_WRITE_SCOPE,
  SCOPES,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
  tokenExpiry,
} from "./_claims.ts";
export type { Scope, TokenClaims, TokenGrant } from "./_claims.ts";
export { jwks, mintToken, tokenKeyId } from "./_mint.ts";
export type { TokenSigner } from "./_mint.ts";
export { bearerToken, createTokenVerifier } from "./_verify.ts";
export type {
  TokenVerifier,
  TokenVerifierOptions,
  VerifyOptions,
} from "./_verify.ts";

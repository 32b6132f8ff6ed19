/**
 * The claims of a Sigil bearer token: an ES256 JWT minted by `sigil ca token`
 * (`iss: "sigil-ca"`, `aud: "sigil"`, space-separated `scope`, and the
 * identity globs the CA's policy checks).
 * @module
 */
import { decodeJwt } from "jose";
import type { JWTPayload } from "jose";

/** Token issuer claim. */
export const TOKEN_ISSUER = "sigil-ca";
/** Token audience claim. */
export const TOKEN_AUDIENCE = "sigil";
/** Scopes `sigil ca token` mints. */
export const SCOPES = [
  "cert.issue",
  "cert.router",
  "routes.write",
  "routes.read",
  "credhub.read",
  "credhub.write",
] as const;
/** A scope `sigil ca token` mints. */
export type Scope = typeof SCOPES[number];
/** The scope the CA's `/v1/sign` requires. */
export const CERT_ISSUE_SCOPE: Scope = "cert.issue";
/**
 * The scope `/v1/sign` requires for a router identity (`kind: "router"`). A
 * token carries it or {@linkcode CERT_ISSUE_SCOPE}, never both: a cell token
 * cannot mint a router's identity, nor a router token an instance's.
 */
export const CERT_ROUTER_SCOPE: Scope = "cert.router";
/** The scope the router's registration API requires. */
export const ROUTES_WRITE_SCOPE: Scope = "routes.write";
/**
 * The scope the router's `/routes`, `/metrics` and `/status` require on an
 * API listener that is not loopback.
 */
export const ROUTES_READ_SCOPE: Scope = "routes.read";

/** What a token allows. Globs use `*` for any run of characters. */
export interface TokenGrant {
  subject: string;
  scopes: Scope[];
  apps: string[];
  spaces: string[];
  orgs: string[];
  cidrs: string[];
  /** Router names (and their DNS names) a `cert.router` token may certify. */
  routers?: string[];
}

/** Verified claims. `scopes` lists every scope the token carries. */
export interface TokenClaims extends Omit<TokenGrant, "scopes" | "routers"> {
  scopes: string[];
  routers: string[];
  expiresAt: Date;
  id: string;
}

/**
 * The first claim whose JSON type is wrong (`sub`, `jti` and `scope` must be
 * strings), or `undefined`. A correctly signed token with `"sub": []` would
 * otherwise become a subject that is not a string.
 */
export function mistypedClaim(payload: JWTPayload): string | undefined {
  return ["sub", "jti", "scope"].find((k) =>
    payload[k] !== undefined && typeof payload[k] !== "string"
  );
}

const MAX_DATE_MS = 8.64e15;

/** Reads the claims of a verified payload; absent lists are empty. */
export function claimsOf(payload: JWTPayload): TokenClaims {
  const list = (v: unknown) =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  return {
    subject: payload.sub ?? "",
    scopes: typeof payload.scope === "string"
      ? payload.scope.split(" ").filter((s) => s !== "")
      : [],
    apps: list(payload.apps),
    spaces: list(payload.spaces),
    orgs: list(payload.orgs),
    cidrs: list(payload.cidrs),
    routers: list(payload.routers),
    // Capped at the latest time a Date holds (a far-future exp is no error).
    expiresAt: new Date(Math.min((payload.exp ?? 0) * 1000, MAX_DATE_MS)),
    id: payload.jti ?? "",
  };
}

/**
 * The expiry of a token, read without verifying it (for expiry metrics and
 * warnings of a token this process holds); `undefined` when it has no `exp`
 * or is not a JWT.
 *
 * @example
 * ```ts
 * import { tokenExpiry } from "./_claims.ts";
 * console.assert(tokenExpiry("not-a-jwt") === undefined);
 * ```
 */
export function tokenExpiry(token: string): Date | undefined {
  try {
    const exp = decodeJwt(token).exp;
    return typeof exp === "number" ? new Date(exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}

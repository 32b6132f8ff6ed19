/**
 * One verifier for Sigil bearer tokens, shared by every service that accepts
 * them (the CA's `/v1/sign`, the router's registration API, credhub).
 * @module
 */
import { errors as joseErrors, jwtVerify } from "jose";
import type { JWTPayload, JWTVerifyGetKey } from "jose";
import { describeFetchError, systemClock } from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import {
  claimsOf,
  mistypedClaim,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
} from "./_claims.ts";
import type { TokenClaims } from "./_claims.ts";
import { localKey, remoteKeys } from "./_keys.ts";
import type { VerifyKey } from "./_keys.ts";
import { TokenError } from "./errors.ts";

/** Options of {@linkcode createTokenVerifier}; set `jwksUrl` or `publicKey`. */
export interface TokenVerifierOptions {
  /** Required `iss`. @default {"sigil-ca"} */
  issuer?: string;
  /** Required `aud`. @default {"sigil"} */
  audience?: string;
  /** The CA's `/v1/jwks.json`; keys are fetched and cached. */
  jwksUrl?: string | readonly string[];
  /** PEM bundle trusted when fetching `jwksUrl` over HTTPS. */
  caBundle?: string;
  /** A public key, or its text: JWK JSON, JWKS JSON or PEM SPKI. */
  publicKey?: string | CryptoKey;
  /** Claims that must be present, e.g. `["exp", "sub"]`. @default {[]} */
  requiredClaims?: string[];
  /** Time source for expiry. @default {systemClock} */
  clock?: Clock;
  /** Fetch used for `jwksUrl`. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Verified tokens remembered (cleared when full). @default {4096} */
  cacheSize?: number;
}

/** What one check requires beyond a valid token. */
export interface VerifyOptions {
  /** Every scope listed must be in the token's `scope`. */
  scopes?: readonly string[];
}

/** Checks bearer tokens. */
export interface TokenVerifier {
  /**
   * Verifies a compact JWT and returns its claims.
   * @throws {TokenError} Never containing the token.
   */
  verify(token: string | undefined, options?: VerifyOptions): Promise<
    TokenClaims
  >;
  /**
   * Verifies an `Authorization` header value (`Bearer <jwt>`, scheme
   * case-insensitive as RFC 9110 says).
   * @throws {TokenError}
   */
  verifyAuthorization(
    header: string | undefined | null,
    options?: VerifyOptions,
  ): Promise<TokenClaims>;
  /**
   * Fetches the key set now (a verifier with a local key resolves at once):
   * what a health check asks.
   * @throws {TokenError} `unavailable`, naming the URL and why the fetch failed.
   */
  checkKeys(): Promise<void>;
  /** Releases the JWKS HTTP client. */
  close(): void;
}

/** The token of an `Authorization: Bearer <jwt>` header, if any. */
export function bearerToken(
  header: string | undefined | null,
): string | undefined {
  return header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
}

/**
 * Creates a token verifier. Tokens that verified are cached while unexpired,
 * so a caller's repeated requests skip the ES256 check; scopes are checked on
 * every call.
 *
 * @throws {TypeError} When neither `jwksUrl` nor `publicKey` is set.
 * @throws {SyntaxError | Error} When `publicKey` text cannot be imported.
 * @example
 * ```ts
 * import { createTokenVerifier } from "./_verify.ts";
 * import { mintToken } from "./_mint.ts";
 * const tokenKeys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
 * const jwt = await mintToken({ tokenKeys }, { subject: "p", scopes: ["routes.write"], apps: [], spaces: [], orgs: [], cidrs: [] });
 * const verifier = await createTokenVerifier({ publicKey: tokenKeys.publicKey });
 * const claims = await verifier.verify(jwt, { scopes: ["routes.write"] });
 * console.assert(claims.subject === "p");
 * ```
 */
export async function createTokenVerifier(
  options: TokenVerifierOptions,
): Promise<TokenVerifier> {
  const clock = options.clock ?? systemClock;
  const max = options.cacheSize ?? 4096;
  let key: VerifyKey;
  let close = () => {};
  let checkKeys = () => Promise.resolve();
  const url = typeof options.jwksUrl === "string"
    ? options.jwksUrl
    : options.jwksUrl?.join(" ");
  if (options.jwksUrl !== undefined) {
    let reload: () => Promise<void>;
    ({ key, close, reload } = remoteKeys(options.jwksUrl, options));
    checkKeys = () =>
      reload().catch((err) => {
        throw unavailable(url!, err);
      });
  } else if (options.publicKey !== undefined) {
    key = await localKey(options.publicKey);
  } else {
    throw new TypeError(
      "Cannot verify tokens: set jwksUrl or publicKey",
    );
  }
  const cache = new Map<string, TokenClaims>();

  const check = async (token: string | undefined): Promise<TokenClaims> => {
    if (!token) {
      throw new TokenError(
        "missing",
        "Missing bearer token: send 'Authorization: Bearer <token from sigil ca token>'",
      );
    }
    const now = clock.now();
    const hit = cache.get(token);
    if (hit && hit.expiresAt.getTime() > now) return hit;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
        issuer: options.issuer ?? TOKEN_ISSUER,
        audience: options.audience ?? TOKEN_AUDIENCE,
        algorithms: ["ES256"],
        requiredClaims: options.requiredClaims,
        currentDate: new Date(now),
      }));
    } catch (err) {
      throw refusal(err, url);
    }
    const mistyped = mistypedClaim(payload);
    if (mistyped !== undefined) {
      throw new TokenError(
        "claims",
        `Invalid bearer token: claim "${mistyped}" must be a string`,
        { claim: mistyped },
      );
    }
    const claims = claimsOf(payload);
    if (cache.size >= max) cache.clear();
    cache.set(token, claims);
    return claims;
  };

  const verify = async (token: string | undefined, o: VerifyOptions = {}) => {
    const claims = await check(token);
    for (const scope of o.scopes ?? []) {
      if (!claims.scopes.includes(scope)) {
        throw new TokenError(
          "forbidden",
          `Token "${claims.subject}" lacks scope "${scope}": mint one with 'sigil ca token --scope ${scope}'`,
        );
      }
    }
    return claims;
  };
  return {
    verify,
    verifyAuthorization: (header, o) => verify(bearerToken(header), o),
    checkKeys,
    close,
  };
}

function unavailable(url: string, err: unknown): TokenError {
  return new TokenError(
    "unavailable",
    `Cannot verify bearer token: the CA key set "${url}" is unavailable: ${
      describeFetchError(err)
    }`,
    { cause: err },
  );
}

function refusal(err: unknown, url: string | undefined): TokenError {
  const remote = url !== undefined;
  if (
    err instanceof joseErrors.JWKSTimeout ||
    err instanceof joseErrors.JWKSInvalid ||
    (remote && !(err instanceof joseErrors.JOSEError)) ||
    (remote && (err as joseErrors.JOSEError).code === "ERR_JOSE_GENERIC")
  ) {
    return unavailable(url ?? "", err);
  }
  if (err instanceof joseErrors.JWTExpired) {
    return new TokenError(
      "expired",
      "Invalid bearer token: it has expired; mint a new one with 'sigil ca token'",
      { cause: err },
    );
  }
  if (
    err instanceof joseErrors.JWSSignatureVerificationFailed ||
    err instanceof joseErrors.JWKSNoMatchingKey
  ) {
    return new TokenError(
      "signature",
      "Invalid bearer token: its signature does not verify with the CA's token key",
      { cause: err },
    );
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return new TokenError(
      "claims",
      `Invalid bearer token: claim "${err.claim}" is not what this service accepts (issuer, audience and required claims)`,
      { cause: err, claim: err.claim },
    );
  }
  return new TokenError(
    "malformed",
    "Invalid bearer token: it is not a valid JWT",
    { cause: err },
  );
}

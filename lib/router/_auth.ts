/**
 * Bearer-token checks for the registration API: an ES256 JWT from the Sigil CA
 * (`iss: "sigil-ca"`, `aud: "sigil"`) whose space-separated `scope` includes
 * `routes.write`. Keys come from the CA's JWKS URL or a local key file.
 * @module
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors as joseErrors,
  importJWK,
  importSPKI,
  jwtVerify,
} from "jose";
import type { JWTPayload, JWTVerifyGetKey } from "jose";
import { RouterAuthError, RouterError } from "./errors.ts";

const MAX_CACHED = 4096;

/** The scope that allows route writes. */
export const ROUTES_WRITE_SCOPE = "routes.write";

/** Checks bearer tokens. */
export interface TokenVerifier {
  /**
   * Verifies an `Authorization` header value; resolves to the token subject.
   * @throws {RouterAuthError} 401 or 403.
   */
  verify(authorization: string | undefined): Promise<string>;
  /** Releases the JWKS HTTP client. */
  close(): void;
}

/** Options of {@linkcode createTokenVerifier}. */
export interface TokenVerifierOptions {
  /** The CA's `/v1/jwks.json`. */
  jwksUrl?: string;
  /** PEM bundle trusted when fetching `jwksUrl`. */
  caBundle?: string;
  /** Contents of a public key file: JWK JSON, JWKS JSON or PEM SPKI. */
  publicKey?: string;
  issuer: string;
  audience: string;
  /** Scope required. @default {"routes.write"} */
  scope?: string;
}

/**
 * Creates a token verifier.
 *
 * @throws {RouterError} When the key material cannot be used.
 * @example
 * ```ts ignore
 * const verify = await createTokenVerifier({ jwksUrl: "https://ca:8443/v1/jwks.json", issuer: "sigil-ca", audience: "sigil" });
 * const subject = await verify.verify("Bearer eyJ...");
 * ```
 */
export async function createTokenVerifier(
  options: TokenVerifierOptions,
): Promise<TokenVerifier> {
  const scope = options.scope ?? ROUTES_WRITE_SCOPE;
  let getKey: JWTVerifyGetKey | CryptoKey;
  let client: Deno.HttpClient | undefined;
  if (options.jwksUrl) {
    if (options.caBundle) {
      client = Deno.createHttpClient({ caCerts: [options.caBundle] });
    }
    const c = client;
    getKey = createRemoteJWKSet(new URL(options.jwksUrl), {
      cooldownDuration: 30_000,
      cacheMaxAge: 600_000,
      [customFetch]: c
        ? (url: string, init: RequestInit) => fetch(url, { ...init, client: c })
        : undefined,
    });
  } else if (options.publicKey) {
    getKey = await importKey(options.publicKey);
  } else {
    throw new RouterError(
      "ERR_ROUTER_AUTH_CONFIG",
      "Cannot verify registration tokens: set api.jwks_url or api.public_key_file",
    );
  }
  // Only tokens that passed every check (scope included) are cached.
  const cache = new Map<string, { sub: string; exp: number }>();
  const verify = async (authorization: string | undefined) => {
    // The scheme is case-insensitive (RFC 9110), as at the CA.
    const token = authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    if (!token) {
      throw new RouterAuthError(
        401,
        "Cannot accept request: missing bearer token",
      );
    }
    // Emitters re-register every 20 s with the same token: skip the ES256
    // verification while a verified token is unexpired.
    const hit = cache.get(token);
    if (hit !== undefined && hit.exp > Date.now()) return hit.sub;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey as JWTVerifyGetKey, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ["ES256"],
        requiredClaims: ["exp", "sub"],
      }));
    } catch (err) {
      if (
        err instanceof joseErrors.JWKSTimeout ||
        err instanceof joseErrors.JWKSInvalid ||
        !(err instanceof joseErrors.JOSEError) ||
        (options.jwksUrl !== undefined && err.code === "ERR_JOSE_GENERIC")
      ) {
        throw new RouterAuthError(
          503,
          "Cannot verify token: the CA key set is unavailable",
          { cause: err },
        );
      }
      const why = err instanceof joseErrors.JWTExpired
        ? "token has expired"
        : err instanceof joseErrors.JWTClaimValidationFailed
        ? `claim "${err.claim}" is invalid`
        : err instanceof joseErrors.JOSEError
        ? `token is invalid (${err.code})`
        : "token cannot be verified";
      throw new RouterAuthError(401, `Cannot accept request: ${why}`, {
        cause: err,
      });
    }
    const scopes = typeof payload.scope === "string"
      ? payload.scope.split(" ")
      : [];
    if (!scopes.includes(scope)) {
      throw new RouterAuthError(
        403,
        `Cannot accept request for "${payload.sub}": token lacks scope "${scope}"`,
      );
    }
    const sub = payload.sub ?? "";
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(token, { sub, exp: (payload.exp ?? 0) * 1000 });
    return sub;
  };
  return { verify, close: () => client?.close() };
}

async function importKey(text: string): Promise<JWTVerifyGetKey | CryptoKey> {
  try {
    const trimmed = text.trim();
    if (trimmed.startsWith("{")) {
      const json = JSON.parse(trimmed);
      if (Array.isArray(json.keys)) return createLocalJWKSet(json);
      const key = await importJWK(json, "ES256");
      return key as CryptoKey;
    }
    return await importSPKI(trimmed, "ES256");
  } catch (err) {
    throw new RouterError(
      "ERR_ROUTER_AUTH_CONFIG",
      "Cannot load the token-verification key: expected a P-256 public key as JWK, JWKS or PEM SPKI",
      { cause: err },
    );
  }
}

/**
 * Cell and router tokens: ES256 JWTs minted by `sigil ca token`, verified by
 * the CA (scope `cert.issue`) and the router's registration API (scope
 * `routes.write`).
 * @module
 */
import { calculateJwkThumbprint, exportJWK, jwtVerify, SignJWT } from "jose";
import type { JWK } from "jose";
import { CaError } from "./errors.ts";
import type { CaStore } from "./_store.ts";

/** Token issuer claim. */
export const TOKEN_ISSUER = "sigil-ca";
/** Token audience claim. */
export const TOKEN_AUDIENCE = "sigil";
/** Scopes a token can carry. */
export const SCOPES = ["cert.issue", "routes.write"] as const;
/** A token scope. */
export type Scope = typeof SCOPES[number];

/** What a token allows. Globs use `*` for any run of characters. */
export interface TokenGrant {
  subject: string;
  scopes: Scope[];
  apps: string[];
  spaces: string[];
  orgs: string[];
  cidrs: string[];
}

/** Verified claims. */
export interface TokenClaims extends TokenGrant {
  expiresAt: Date;
  id: string;
}

/**
 * Mints a token for a cell (or a router registrar).
 *
 * @param store The CA (its token key signs).
 * @param grant What the token allows.
 * @param options `ttlMs` (default 30 days) and `now`.
 * @returns The compact JWT.
 *
 * @example
 * ```ts ignore
 * const jwt = await mintToken(ca, { subject: "cell-1", scopes: ["cert.issue"], apps: ["*"], spaces: ["*"], orgs: ["*"], cidrs: ["10.0.0.0/8"] });
 * ```
 */
export async function mintToken(
  store: CaStore,
  grant: TokenGrant,
  options: { ttlMs?: number; now?: number } = {},
): Promise<string> {
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const ttl = Math.floor((options.ttlMs ?? 30 * 86_400_000) / 1000);
  if (ttl <= 0) throw new RangeError("Cannot mint token: ttl must be positive");
  return await new SignJWT({
    scope: grant.scopes.join(" "),
    apps: grant.apps,
    spaces: grant.spaces,
    orgs: grant.orgs,
    cidrs: grant.cidrs,
  })
    .setProtectedHeader({
      alg: "ES256",
      typ: "JWT",
      kid: await tokenKeyId(store),
    })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(grant.subject)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(crypto.randomUUID())
    .sign(store.tokenKeys.privateKey);
}

/**
 * Verifies a bearer token and returns its claims. Never echoes the token.
 *
 * @throws {CaError} `ERR_CA_UNAUTHENTICATED` when missing, malformed, badly
 *   signed, expired, or for another issuer/audience; `ERR_CA_FORBIDDEN` when
 *   it lacks `requiredScope`.
 *
 * @example
 * ```ts ignore
 * const claims = await verifyToken(jwt, ca.tokenKeys.publicKey, "cert.issue");
 * ```
 */
export async function verifyToken(
  token: string | undefined,
  publicKey: CryptoKey,
  requiredScope: Scope,
  now = Date.now(),
): Promise<TokenClaims> {
  const claims = await verifiedClaims(token, publicKey, now);
  if (!claims.scopes.includes(requiredScope)) {
    throw new CaError(
      "ERR_CA_FORBIDDEN",
      `Token "${claims.subject}" lacks scope "${requiredScope}": mint one with 'sigil ca token --scope ${requiredScope}'`,
    );
  }
  return claims;
}

// Verified tokens, so a cell's repeated requests do not pay an ES256 verify
// each time. Keyed by the exact token text and the verifying key; an entry is
// used only while the token is unexpired. Bounded: cleared when full.
const verified = new WeakMap<CryptoKey, Map<string, TokenClaims>>();
const MAX_CACHED = 4096;

async function verifiedClaims(
  token: string | undefined,
  publicKey: CryptoKey,
  now: number,
): Promise<TokenClaims> {
  let cache = verified.get(publicKey);
  const hit = token ? cache?.get(token) : undefined;
  if (hit && hit.expiresAt.getTime() > now) return hit;
  const claims = await verifyUncached(token, publicKey, now);
  if (!cache) verified.set(publicKey, cache = new Map());
  if (cache.size >= MAX_CACHED) cache.clear();
  cache.set(token!, claims);
  return claims;
}

async function verifyUncached(
  token: string | undefined,
  publicKey: CryptoKey,
  now: number,
): Promise<TokenClaims> {
  if (!token) {
    throw new CaError(
      "ERR_CA_UNAUTHENTICATED",
      "Missing bearer token: send 'Authorization: Bearer <token from sigil ca token>'",
    );
  }
  let payload;
  try {
    ({ payload } = await jwtVerify(token, publicKey, {
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      algorithms: ["ES256"],
      currentDate: new Date(now),
    }));
  } catch (err) {
    const code = (err as { code?: string }).code ?? "";
    const why = code === "ERR_JWT_EXPIRED"
      ? "it has expired; mint a new one with 'sigil ca token'"
      : code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"
      ? "its signature does not verify with this CA's token key"
      : code === "ERR_JWT_CLAIM_VALIDATION_FAILED"
      ? "its issuer or audience is not this CA's"
      : "it is not a valid JWT";
    throw new CaError(
      "ERR_CA_UNAUTHENTICATED",
      `Invalid bearer token: ${why}`,
      { cause: err },
    );
  }
  const list = (v: unknown) =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  const scopes =
    (typeof payload.scope === "string" ? payload.scope.split(" ") : [])
      .filter((s): s is Scope => (SCOPES as readonly string[]).includes(s));
  const claims: TokenClaims = {
    subject: payload.sub ?? "",
    scopes,
    apps: list(payload.apps),
    spaces: list(payload.spaces),
    orgs: list(payload.orgs),
    cidrs: list(payload.cidrs),
    expiresAt: new Date((payload.exp ?? 0) * 1000),
    id: payload.jti ?? "",
  };
  return claims;
}

/** The key id (`kid`) of the token key: its JWK thumbprint. */
export async function tokenKeyId(store: CaStore): Promise<string> {
  return await calculateJwkThumbprint(
    await exportJWK(store.tokenKeys.publicKey),
  );
}

/**
 * The JWKS served at `/v1/jwks.json`.
 *
 * @example
 * ```ts ignore
 * const { keys } = await jwks(ca);
 * ```
 */
export async function jwks(store: CaStore): Promise<{ keys: JWK[] }> {
  const jwk = await exportJWK(store.tokenKeys.publicKey);
  return {
    keys: [{ ...jwk, kid: await tokenKeyId(store), alg: "ES256", use: "sig" }],
  };
}

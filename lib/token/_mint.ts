/**
 * Minting tokens and publishing the key that verifies them (the CA's side).
 * @module
 */
import { calculateJwkThumbprint, exportJWK, SignJWT } from "jose";
import type { JWK } from "jose";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "./_claims.ts";
import type { TokenGrant } from "./_claims.ts";

/** Whatever holds the token key pair (the CA's store). */
export interface TokenSigner {
  tokenKeys: CryptoKeyPair;
}

/**
 * Mints a token for a cell (or a router registrar).
 *
 * @param signer Holds the ES256 token key pair (the CA's store).
 * @param grant What the token allows.
 * @param options `ttlMs` (default 30 days) and `now`.
 * @returns The compact JWT.
 * @throws {RangeError} When `ttlMs` is not positive.
 *
 * @example
 * ```ts
 * import { mintToken } from "./_mint.ts";
 * const tokenKeys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
 * const jwt = await mintToken({ tokenKeys }, { subject: "cell-1", scopes: ["cert.issue"], apps: ["*"], spaces: ["*"], orgs: ["*"], cidrs: ["10.0.0.0/8"] });
 * console.assert(jwt.split(".").length === 3);
 * ```
 */
export async function mintToken(
  signer: TokenSigner,
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
    ...(grant.routers?.length ? { routers: grant.routers } : {}),
  })
    .setProtectedHeader({
      alg: "ES256",
      typ: "JWT",
      kid: await tokenKeyId(signer),
    })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(grant.subject)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(crypto.randomUUID())
    .sign(signer.tokenKeys.privateKey);
}

/** The key id (`kid`) of the token key: its JWK thumbprint. */
export async function tokenKeyId(signer: TokenSigner): Promise<string> {
  return await calculateJwkThumbprint(
    await exportJWK(signer.tokenKeys.publicKey),
  );
}

/**
 * The JWKS served at the CA's `/v1/jwks.json`.
 *
 * @example
 * ```ts
 * import { jwks } from "./_mint.ts";
 * const tokenKeys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
 * const { keys } = await jwks({ tokenKeys });
 * console.assert(keys[0]?.alg === "ES256");
 * ```
 */
export async function jwks(signer: TokenSigner): Promise<{ keys: JWK[] }> {
  const jwk = await exportJWK(signer.tokenKeys.publicKey);
  return {
    keys: [{ ...jwk, kid: await tokenKeyId(signer), alg: "ES256", use: "sig" }],
  };
}

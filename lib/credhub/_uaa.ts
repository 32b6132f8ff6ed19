/**
 * The minimal UAA-compatible token endpoint the `credhub` CLI logs in with:
 * `GET /info` and `POST /oauth/token` (`grant_type=client_credentials`, client
 * credentials in the form or HTTP Basic). Tokens are short-lived ES256 JWTs
 * signed by the CA's token key, with `sub`/`client_id` = the client name and
 * `scope` = its scopes. Wrong secrets answer as UAA does (401
 * `invalid_client`), and repeated failures per client and address are limited
 * (429 with `Retry-After`).
 * @module
 */
import { Hono } from "hono";
import { decodeJwt, jwtVerify, SignJWT } from "jose";
import type { Clock } from "../common/mod.ts";
import { systemClock } from "../common/mod.ts";
import type { CredhubUaaSection } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { exportPublicKeyPem, importPrivateKeyPem } from "../pki/mod.ts";
import { tokenKeyId } from "../token/mod.ts";
import { CredhubClientsError, readClients, verifyClient } from "./_clients.ts";

/** Options for {@linkcode uaaApp}. */
export interface UaaOptions {
  /** The clients file. */
  clientsFile: string;
  /** The CA's token signing key (ES256 private key). */
  signingKey: CryptoKey;
  /** `kid` of the signing key. */
  keyId?: string;
  /** Token lifetime in seconds. @default {300} */
  ttlSeconds?: number;
  /** `iss` claim. @default {"sigil-ca"} */
  issuer?: string;
  /** `aud` claim. @default {"sigil"} */
  audience?: string;
  /** Failed logins allowed per client and address per window. @default {5} */
  maxFailures?: number;
  /** Failure window in milliseconds. @default {60000} */
  windowMs?: number;
  /** The caller's address (the server passes the socket's). */
  remoteAddress?: (req: Request) => string;
  /** Time source. */
  clock?: Clock;
  /** Logs `token-issued` and `token-refused` (client names only, never secrets). */
  logger?: Logger;
  /**
   * With `publicKey`: `DELETE /oauth/token/revoke/:jti` (what `credhub
   * logout` calls), recorded here.
   */
  revocations?: TokenRevocations;
  /** The signing key's public half, to check the caller of a revocation. */
  publicKey?: CryptoKey;
}

/**
 * Issued and revoked token ids, in memory, each kept until its token expires.
 * CredHub itself never learns of UAA revocations (it checks tokens offline);
 * `sigil credhub` refuses a revoked token at once (per process).
 */
export class TokenRevocations {
  #issued = new Map<string, { client: string; exp: number }>();
  #revoked = new Map<string, number>();
  #clock: Clock;
  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }
  #prune(): void {
    const now = this.#clock.now();
    for (const map of [this.#issued, this.#revoked]) {
      if (map.size < 10_000) continue;
      for (const [jti, v] of map) {
        if ((typeof v === "number" ? v : v.exp) <= now) map.delete(jti);
      }
    }
  }
  /** Records an issued token (exp in ms). */
  issued(jti: string, client: string, exp: number): void {
    this.#prune();
    this.#issued.set(jti, { client, exp });
  }
  /** The client a live token was issued to. */
  clientOf(jti: string): string | undefined {
    const t = this.#issued.get(jti);
    return t && t.exp > this.#clock.now() ? t.client : undefined;
  }
  /** Revokes a live token. */
  revoke(jti: string): void {
    const t = this.#issued.get(jti);
    if (t) this.#revoked.set(jti, t.exp);
  }
  /** Whether a compact JWT's `jti` was revoked (unparseable tokens: no). */
  isRevoked(token: string): boolean {
    let jti: unknown;
    try {
      jti = decodeJwt(token).jti;
    } catch {
      return false;
    }
    return typeof jti === "string" && this.#revoked.has(jti);
  }
}

const BAD_CREDENTIALS = {
  error: "invalid_client",
  error_description: "Bad credentials",
};

/** Signs the tokens the endpoint issues: `sub`/`client_id`/`cid` = the client. */
function tokenSigner(options: UaaOptions) {
  const clock = options.clock ?? systemClock;
  const ttl = options.ttlSeconds ?? 300;
  return async (clientId: string, scopes: string[]) => {
    const iat = Math.floor(clock.now() / 1000);
    const jti = crypto.randomUUID().replaceAll("-", "");
    const header: { alg: string; typ: string; kid?: string } = {
      alg: "ES256",
      typ: "JWT",
    };
    if (options.keyId) header.kid = options.keyId;
    const token = await new SignJWT({
      client_id: clientId,
      cid: clientId,
      scope: scopes.join(" "),
      grant_type: "client_credentials",
    })
      .setProtectedHeader(header)
      .setIssuer(options.issuer ?? "sigil-ca")
      .setAudience(options.audience ?? "sigil")
      .setSubject(clientId)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .setJti(jti)
      .sign(options.signingKey);
    return { token, jti };
  };
}

const NO_AUTH = {
  error: "unauthorized",
  error_description: "Full authentication is required to access this resource",
};

/**
 * Builds the token endpoint as a hono sub-app, to mount at the root of the
 * CredHub server (or serve alone as its `auth-server.url`).
 *
 * @param options Clients file, signing key, lifetimes.
 * @returns The hono app.
 *
 * @example
 * ```ts ignore
 * const app = uaaApp({ clientsFile, signingKey: ca.tokenKeys.privateKey });
 * const res = await app.request("/info");
 * ```
 */
export function uaaApp(options: UaaOptions): Hono {
  const clock = options.clock ?? systemClock;
  const ttl = options.ttlSeconds ?? 300;
  const maxFailures = options.maxFailures ?? 5;
  const windowMs = options.windowMs ?? 60_000;
  const failures = new Map<string, { count: number; since: number }>();
  const sign = tokenSigner(options);
  const app = new Hono();

  app.get("/info", (c) =>
    c.json({
      app: { version: "sigil" },
      links: {
        uaa: new URL(c.req.url).origin,
        login: new URL(c.req.url).origin,
      },
      zone_name: "uaa",
      prompts: {
        username: ["text", "Email"],
        password: ["password", "Password"],
      },
    }));

  app.post("/oauth/token", async (c) => {
    let form: URLSearchParams;
    try {
      form = new URLSearchParams(await c.req.text());
    } catch {
      return c.json({
        error: "invalid_request",
        error_description: "Unreadable body",
      }, 400);
    }
    let clientId = form.get("client_id") ?? "";
    let secret = form.get("client_secret") ?? "";
    const basic = c.req.header("authorization")?.match(/^Basic\s+(\S+)$/i)?.[1];
    if (basic) {
      try {
        const text = atob(basic);
        const at = text.indexOf(":");
        if (at > 0) {
          clientId = decodeURIComponent(text.slice(0, at));
          secret = decodeURIComponent(text.slice(at + 1));
        }
      } catch {
        return c.json(BAD_CREDENTIALS, 401);
      }
    }
    const grant = form.get("grant_type");
    const clients = await readClients(options.clientsFile);
    // A name not in the file may be a secret pasted in the wrong field: not logged.
    const known = Object.hasOwn(clients, clientId) ? clientId : null;
    const refused = (reason: string) =>
      options.logger?.warn("token-refused", { client: known, reason });
    if (grant !== "client_credentials") {
      refused("unsupported-grant-type");
      return c.json({
        error: "unsupported_grant_type",
        error_description: `Unsupported grant type: ${grant ?? ""}`,
      }, 400);
    }
    const key = `${clientId}\u0000${options.remoteAddress?.(c.req.raw) ?? ""}`;
    const now = clock.now();
    let entry = failures.get(key);
    if (entry && now - entry.since >= windowMs) {
      failures.delete(key);
      entry = undefined;
    }
    if (entry && entry.count >= maxFailures) {
      refused("rate-limited");
      c.header(
        "Retry-After",
        String(Math.max(1, Math.ceil((entry.since + windowMs - now) / 1000))),
      );
      return c.json({
        error: "too_many_requests",
        error_description: "Too many failed logins; retry later",
      }, 429);
    }
    const scopes = clientId && secret
      ? await verifyClient(clients, clientId, secret)
      : undefined;
    if (!scopes) {
      refused("bad-credentials");
      if (failures.size > 10_000) failures.clear();
      if (entry) entry.count++;
      else failures.set(key, { count: 1, since: now });
      c.header(
        "WWW-Authenticate",
        'Basic realm="UAA/client", error="unauthorized", error_description="Bad credentials"',
      );
      return c.json(BAD_CREDENTIALS, 401);
    }
    failures.delete(key);
    const { token, jti } = await sign(clientId, scopes);
    options.revocations?.issued(
      jti,
      clientId,
      (Math.floor(clock.now() / 1000) + ttl) * 1000,
    );
    options.logger?.info("token-issued", {
      client: clientId,
      scopes: scopes.join(" "),
      expires_in: ttl,
    });
    c.header("Cache-Control", "no-store");
    c.header("Pragma", "no-cache");
    return c.json({
      access_token: token,
      token_type: "bearer",
      expires_in: ttl,
      scope: scopes.join(" "),
      jti,
    });
  });
  const { revocations, publicKey } = options;
  if (revocations && publicKey) {
    // UAA's TokenRevocationEndpoint: a client may revoke its own tokens.
    app.delete("/oauth/token/revoke/:jti", async (c) => {
      const bearer = c.req.header("authorization")?.match(
        /^bearer\s+(\S+)\s*$/i,
      )?.[1];
      if (!bearer) return c.json(NO_AUTH, 401);
      let caller: string | undefined;
      try {
        const { payload } = await jwtVerify(bearer, publicKey, {
          issuer: options.issuer ?? "sigil-ca",
          audience: options.audience ?? "sigil",
          currentDate: new Date(clock.now()),
        });
        caller = payload.sub;
      } catch {
        return c.json({
          error: "invalid_token",
          error_description: "The token could not be verified",
        }, 401);
      }
      const jti = c.req.param("jti");
      const owner = revocations.clientOf(jti);
      if (owner === undefined) {
        return c.json({
          error: "not_found",
          error_description: "Token not found",
        }, 404);
      }
      if (owner !== caller) {
        return c.json({
          error: "access_denied",
          error_description: "Only the token's client may revoke it",
        }, 403);
      }
      revocations.revoke(jti);
      options.logger?.info("token-revoked", { client: owner });
      return c.body(null, 200);
    });
  }
  return app;
}

/** The token endpoint of a `credhub.uaa` section, and the key that verifies its tokens. */
export interface LoadedUaa {
  app: Hono;
  /** The signing key's public half (PEM SPKI). */
  publicKeyPem: string;
  /** A token with no scopes, for checking that the server accepts its own tokens. */
  probeToken(): Promise<string>;
  /** Tokens revoked through `DELETE /oauth/token/revoke/:jti`. */
  revocations: TokenRevocations;
}

/**
 * Builds the token endpoint from the `credhub.uaa` section: loads the CA's
 * token key (refused when group or others can read it, or when it is not
 * an EC P-256 key) and takes its `kid` from the key, as the CA's JWKS does.
 *
 * @param section The `credhub.uaa` section.
 * @param options Issuer, audience and the caller's address.
 * @returns The app and the public key.
 * @throws {CredhubClientsError} `ERR_CREDHUB_TOKEN_KEY` for an unusable key.
 *
 * @example
 * ```ts ignore
 * const { app } = await loadUaa(config.uaa!, { issuer: "sigil-ca", audience: "sigil" });
 * ```
 */
export async function loadUaa(
  section: CredhubUaaSection,
  options: Pick<
    UaaOptions,
    "issuer" | "audience" | "remoteAddress" | "clock" | "logger"
  >,
): Promise<LoadedUaa> {
  const path = section.token_key_file;
  const refuse = (why: string, cause?: unknown) =>
    new CredhubClientsError(
      "ERR_CREDHUB_TOKEN_KEY",
      `Cannot serve the token endpoint: token key "${path}" ${why}`,
      { cause },
    );
  const info = await Deno.stat(path);
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw refuse(
      `is readable by group or others (mode ${
        (info.mode & 0o777).toString(8)
      }); run 'chmod 600 ${path}'`,
    );
  }
  let keys;
  try {
    keys = await importPrivateKeyPem(await Deno.readTextFile(path));
  } catch (err) {
    throw refuse("is not a PEM private key (use the CA's token.key)", err);
  }
  if (keys.type !== "ec-p256") {
    throw refuse(
      `is a ${keys.type} key; tokens are ES256: use the CA's token.key`,
    );
  }
  const revocations = new TokenRevocations(options.clock);
  const uaaOptions: UaaOptions = {
    ...options,
    revocations,
    publicKey: keys.publicKey,
    clientsFile: section.clients_file,
    signingKey: keys.privateKey,
    keyId: await tokenKeyId({ tokenKeys: keys }),
    ttlSeconds: Math.floor(section.token_ttl / 1000),
    maxFailures: section.max_failures,
    windowMs: section.failure_window,
  };
  const sign = tokenSigner(uaaOptions);
  return {
    app: uaaApp(uaaOptions),
    publicKeyPem: await exportPublicKeyPem(keys.publicKey),
    probeToken: async () => (await sign("sigil-self-check", [])).token,
    revocations,
  };
}

/**
 * Starting the registration API: the token verifier (JWKS or a fixed key,
 * from lib/token), the hono app with its status page, and its listener (TLS
 * when `api.cert` is set; a warning when bearer tokens would cross a
 * non-loopback address in plain text).
 * @module
 */
import type { Clock } from "../common/mod.ts";
import type { RouterSection } from "../config/mod.ts";
import { isLoopback, readTokenRequired } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { RegistryMessage } from "../routes/mod.ts";
import { createTokenVerifier } from "../token/mod.ts";
import type { TokenVerifier } from "../token/mod.ts";
import { RouterError } from "./errors.ts";
import { createApiApp } from "./_api.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import { serveApi } from "./_listeners.ts";
import type { ListenTls } from "./_listeners.ts";
import type { RouterStatus } from "../status/mod.ts";

/** Options of {@linkcode startApi}. */
export interface ApiServerOptions {
  api: RouterSection["api"];
  files: {
    publicKey: string | undefined;
    caBundle: string | undefined;
    cert: string | undefined;
    key: string | undefined;
  };
  registry: Registry;
  stats: RouterStats;
  logger: Logger;
  clock: Clock;
  apply(
    action: "register" | "unregister",
    message: RegistryMessage,
    source: string,
  ): void;
  healthy(): boolean;
  status(host: string): RouterStatus;
}

/** A started registration API. */
export interface ApiServer {
  /** The current listener (replaced by {@linkcode ApiServer.swapTls}). */
  server: Deno.HttpServer<Deno.NetAddr>;
  port: number;
  verifier: TokenVerifier;
  /**
   * Serves a new certificate: the old listener stops accepting and lets its
   * requests finish while a new one binds the same port. Deno.serve cannot
   * swap a certificate in place, so a connection attempted in the few
   * milliseconds between the two is refused (a client retries it).
   */
  swapTls(tls: ListenTls): Promise<void>;
}

/**
 * Loads the token key and binds the API.
 *
 * @throws {RouterError} `ERR_ROUTER_AUTH_CONFIG` for an unusable token key,
 *   `ERR_ROUTER_LISTEN` when the address cannot be bound.
 */
export async function startApi(o: ApiServerOptions): Promise<ApiServer> {
  const { api, files, logger } = o;
  const verifier = await createTokenVerifier({
    jwksUrl: api.jwks_url,
    caBundle: files.caBundle,
    publicKey: files.publicKey,
    issuer: api.issuer,
    audience: api.audience,
    requiredClaims: ["exp", "sub"],
    clock: o.clock,
  }).catch((err) => {
    throw new RouterError(
      "ERR_ROUTER_AUTH_CONFIG",
      "Cannot load the token-verification key: expected a P-256 public key as JWK, JWKS or PEM SPKI",
      { cause: err },
    );
  });
  const app = createApiApp({
    registry: o.registry,
    stats: o.stats,
    logger,
    clock: o.clock,
    verifier,
    maxBodyBytes: api.max_body_bytes,
    apply: o.apply,
    healthy: o.healthy,
    jwksUrl: api.jwks_url,
    readNeedsToken: readTokenRequired(api),
    status: o.status,
  });
  const tls = files.cert !== undefined && files.key !== undefined
    ? { cert: files.cert, key: files.key }
    : undefined;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = serveApi(api.listen, app.fetch, tls);
  } catch (err) {
    verifier.close();
    throw err;
  }
  const port = server.addr.port;
  if (!tls && !isLoopback(api.listen.hostname)) {
    logger.warn("api-plaintext", {
      listen: `${api.listen.hostname}:${port}`,
      detail:
        "the registration API takes bearer tokens over plain HTTP on a non-loopback address; set api.cert and api.key",
    });
  }
  const result: ApiServer = {
    server,
    port,
    verifier,
    async swapTls(next) {
      const old = result.server;
      const closing = old.shutdown().catch(() => {});
      const addr = { hostname: api.listen.hostname, port };
      let bound: Deno.HttpServer<Deno.NetAddr> | undefined;
      let lastErr: unknown;
      // The old socket is released asynchronously: retry the bind briefly.
      for (let i = 0; i < 200 && !bound; i++) {
        try {
          bound = serveApi(addr, app.fetch, next);
        } catch (err) {
          lastErr = err;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      if (!bound) {
        // Keep serving with what we had rather than not at all.
        result.server = serveApi(addr, app.fetch, tls);
        await closing;
        throw lastErr;
      }
      result.server = bound;
      await closing;
    },
  };
  return result;
}

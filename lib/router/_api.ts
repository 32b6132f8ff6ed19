/**
 * The registration API (hono), served on its own listener:
 * `POST /v1/register`, `POST /v1/unregister` (bearer token with scope
 * `routes.write`), `GET /routes`, `GET /healthz`, `GET /metrics`, and the
 * status page `GET /status` (with `/status.json`).
 * @module
 */
import { Hono } from "hono";
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { parseRegistryMessage, RegistryMessageError } from "../routes/mod.ts";
import type { IgnoredField } from "../routes/mod.ts";
import type { RegistryMessage } from "../routes/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { METRICS_CONTENT_TYPE } from "../observe/mod.ts";
import { clientAddress } from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import {
  ROUTES_READ_SCOPE,
  ROUTES_WRITE_SCOPE,
  TokenError,
} from "../token/mod.ts";
import type { TokenVerifier } from "../token/mod.ts";
import { RouterAuthError } from "./errors.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import { mountStatus } from "../status/mod.ts";
import type { RouterStatus } from "../status/mod.ts";

/** What the API needs. */
export interface ApiContext {
  registry: Registry;
  stats: RouterStats;
  logger: Logger;
  clock: Clock;
  verifier: TokenVerifier;
  maxBodyBytes: number;
  /** Applies a validated message (shared with NATS). */
  apply(
    action: "register" | "unregister",
    msg: RegistryMessage,
    source: string,
  ): void;
  /** Whether the router is up (false while draining). */
  healthy(): boolean;
  /** The CA key set's URL (`api.jwks_url`), named in health logs. */
  jwksUrl?: string | readonly string[];
  /**
   * Whether `/routes`, `/metrics` and `/status` need a `routes.read` token
   * (the API listener is not loopback). @default {false}
   */
  readNeedsToken?: boolean;
  /** The status page's snapshot, routes filtered by `host`. */
  status?(host: string): RouterStatus;
}

/**
 * Builds the API app. Test it in-process with `app.request()`.
 *
 * @example
 * ```ts ignore
 * const app = createApiApp(ctx);
 * const res = await app.request("/healthz");
 * ```
 */
export function createApiApp(ctx: ApiContext): Hono {
  const app = new Hono();
  const keysProblem = keySetCheck(ctx);

  // Healthy means registrations can be accepted: not draining, and the key
  // set that verifies their tokens can be fetched.
  app.get("/healthz", async (c) => {
    if (!ctx.healthy()) return c.text("draining\n", 503);
    const problem = await keysProblem();
    if (problem !== undefined) return c.text(`unhealthy: ${problem}\n`, 503);
    return c.text("ok\n");
  });

  // The route table, metrics and status page name every app's backends.
  // gorouter serves /routes only on a loopback port (127.0.0.1:8082), and
  // behind basic auth on its status port; here a loopback API listener is
  // open like that port, and any other needs a routes.read bearer token (a
  // token the CA mints and can expire, instead of a shared password).
  const readGuard: MiddlewareHandler = async (c, next) => {
    if (ctx.readNeedsToken) {
      await verifiedSubject(ctx.verifier, c.req.header("authorization"), [
        ROUTES_READ_SCOPE,
      ]);
    }
    await next();
  };
  app.get(
    "/routes",
    readGuard,
    (c) => c.json(ctx.registry.toJson()),
  );
  const status = ctx.status;
  if (status) {
    mountStatus(app, (c) => status(c.req.query("host") ?? ""), {
      guard: readGuard,
    });
  }

  app.get(
    "/metrics",
    readGuard,
    (c) =>
      c.body(ctx.stats.render(), 200, { "content-type": METRICS_CONTENT_TYPE }),
  );

  for (const action of ["register", "unregister"] as const) {
    app.post(`/v1/${action}`, async (c) => {
      const subject = await verifiedSubject(
        ctx.verifier,
        c.req.header("authorization"),
        [ROUTES_WRITE_SCOPE],
      );
      const length = Number(c.req.header("content-length") ?? "0");
      if (length > ctx.maxBodyBytes) tooLarge(ctx.maxBodyBytes);
      const bytes = await readLimited(c.req.raw, ctx.maxBodyBytes);
      let msg: RegistryMessage;
      const ignored: IgnoredField[] = [];
      try {
        msg = parseRegistryMessage(bytes, (i) => ignored.push(i));
      } catch (err) {
        if (!(err instanceof RegistryMessageError)) throw err;
        ctx.stats.registryMessages.inc({
          source: "http",
          action,
          result: err.reason,
        });
        ctx.logger.warn("registry-message-rejected", {
          source: "http",
          action,
          subject,
          client: clientAddress(c.env),
          reason: err.reason,
          error: err.message,
        });
        return c.json({ error: err.reason, message: err.message }, 400);
      }
      for (const i of ignored) {
        ctx.logger.warn("registry-message-field-ignored", {
          source: "http",
          action,
          subject,
          field: i.field,
          detail: i.detail,
        });
      }
      ctx.apply(action, msg, "http");
      return c.json(ignored.length > 0 ? { ok: true, ignored } : { ok: true });
    });
  }

  app.notFound((c) => c.json({ error: "not_found" }, 404));

  app.onError((err, c) => {
    if (err instanceof RouterAuthError) {
      ctx.logger.warn("api-auth-refused", {
        client: clientAddress(c.env),
        path: c.req.path,
        status: err.status,
        error: err.message,
      });
      const headers: Record<string, string> = err.status === 401
        ? { "www-authenticate": 'Bearer realm="sigil-router"' }
        : {};
      return c.json(
        {
          error: err.status === 401
            ? "unauthorized"
            : err.status === 403
            ? "forbidden"
            : "auth_unavailable",
          message: err.message,
        },
        err.status,
        headers,
      );
    }
    if (err instanceof HTTPException) {
      return c.json(
        { error: "request_error", message: err.message },
        err.status,
      );
    }
    ctx.logger.error("api-error", { path: c.req.path, error: err });
    return c.json({ error: "internal_error" }, 500);
  });

  return app;
}

/** How long one key-set check answers health checks. */
const KEYS_CHECK_INTERVAL_MS = 5_000;

/**
 * The key-set part of `/healthz`: fetches the JWKS at most every
 * {@linkcode KEYS_CHECK_INTERVAL_MS} (concurrent checks share one fetch) and
 * logs `jwks-unavailable` with the URL and the error when it starts failing,
 * `jwks-available` when it works again.
 */
function keySetCheck(ctx: ApiContext): () => Promise<string | undefined> {
  let last: { at: number; problem: string | undefined } | undefined;
  let running: Promise<string | undefined> | undefined;
  return () => {
    const now = ctx.clock.now();
    if (last && now - last.at < KEYS_CHECK_INTERVAL_MS) {
      return Promise.resolve(last.problem);
    }
    return running ??= ctx.verifier.checkKeys().then(
      () => undefined,
      (err: Error) => err.message,
    ).then((problem) => {
      if (problem !== undefined && problem !== last?.problem) {
        ctx.logger.error("jwks-unavailable", {
          url: ctx.jwksUrl,
          error: problem,
        });
      } else if (problem === undefined && last?.problem !== undefined) {
        ctx.logger.info("jwks-available", { url: ctx.jwksUrl });
      }
      last = { at: ctx.clock.now(), problem };
      running = undefined;
      return problem;
    });
  };
}

function tooLarge(max: number): never {
  throw new HTTPException(413, {
    message: `Cannot accept request: body is larger than ${max} bytes`,
  });
}

async function readLimited(req: Request, max: number): Promise<Uint8Array> {
  if (req.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of req.body) {
    n += chunk.length;
    if (n > max) tooLarge(max);
    chunks.push(chunk);
  }
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

async function verifiedSubject(
  verifier: TokenVerifier,
  authorization: string | undefined,
  scopes: readonly string[],
): Promise<string> {
  try {
    const claims = await verifier.verifyAuthorization(authorization, {
      scopes,
    });
    return claims.subject;
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    throw new RouterAuthError(err.status, err.message, { cause: err });
  }
}

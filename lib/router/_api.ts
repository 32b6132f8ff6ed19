/**
 * The registration API (hono), served on its own listener:
 * `POST /v1/register`, `POST /v1/unregister` (bearer token with scope
 * `routes.write`), `GET /routes`, `GET /healthz`, `GET /metrics`, and the
 * status page `GET /status` (with `/status.json`).
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { parseRegistryMessage, RegistryMessageError } from "../routes/mod.ts";
import type { IgnoredField } from "../routes/mod.ts";
import type { RegistryMessage } from "../routes/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { METRICS_CONTENT_TYPE } from "../observe/mod.ts";
import type { Clock } from "../common/mod.ts";
import { ROUTES_WRITE_SCOPE, TokenError } from "../token/mod.ts";
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

  app.get(
    "/healthz",
    (c) => ctx.healthy() ? c.text("ok\n") : c.text("draining\n", 503),
  );

  app.get("/routes", (c) => c.json(ctx.registry.toJson()));
  const status = ctx.status;
  if (status) mountStatus(app, (c) => status(c.req.query("host") ?? ""));

  app.get(
    "/metrics",
    (c) =>
      c.body(ctx.stats.render(), 200, { "content-type": METRICS_CONTENT_TYPE }),
  );

  for (const action of ["register", "unregister"] as const) {
    app.post(`/v1/${action}`, async (c) => {
      const subject = await verifiedSubject(
        ctx.verifier,
        c.req.header("authorization"),
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
): Promise<string> {
  try {
    const claims = await verifier.verifyAuthorization(authorization, {
      scopes: [ROUTES_WRITE_SCOPE],
    });
    return claims.subject;
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    throw new RouterAuthError(err.status, err.message, { cause: err });
  }
}

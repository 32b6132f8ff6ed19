/**
 * CredHub's HTTP API on hono: `/info`, `/health`, `/api/v1/data`,
 * `/api/v1/interpolate`, `/api/v2/permissions` (paths, status codes and
 * error bodies of CredHub's controllers and `ExceptionHandlers.kt`).
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { Logger } from "../observe/mod.ts";
import { METRICS_CONTENT_TYPE, MetricsRegistry } from "../observe/mod.ts";
import { CredhubError } from "./errors.ts";
import { MSG } from "./_messages.ts";
import type { CredentialStore } from "./_store.ts";
import { registerData } from "./_data.ts";
import { registerPermissions } from "./_perm_api.ts";
import {
  AUDIT_RESULTS,
  type AuditVariables,
  createAudit,
  METRIC_OPERATIONS,
} from "./_audit.ts";

/** The CredHub release whose API this server answers (`GET /version`). */
export const CREDHUB_API_VERSION = "2.12.0";

/** Who is calling: an mTLS app or a bearer client (with its scopes). */
export interface Principal {
  actor: string;
  /** Token scopes; undefined for mTLS callers (permissions alone decide). */
  scopes?: string[];
}

/** Options of {@linkcode createCredhubApp}. */
export interface CredhubAppOptions {
  store: CredentialStore;
  /** Resolves the caller of a request, or throws a {@linkcode CredhubError} (401). */
  authenticate(c: Context): Promise<Principal>;
  /** `auth-server.url` in `/info`. */
  authServerUrl: string;
  logger: Logger;
  metrics?: MetricsRegistry;
  /** A UAA-compatible sub-app mounted at the root when given. */
  uaa?: Hono;
}

/** Context variables set by the auth and audit middleware. */
export type CredhubEnv = { Variables: AuditVariables };

/**
 * Builds the CredHub API app.
 *
 * @example
 * ```ts ignore
 * const app = createCredhubApp({ store, authenticate, authServerUrl: "https://ch:8844", logger });
 * ```
 */
export function createCredhubApp(options: CredhubAppOptions): Hono<CredhubEnv> {
  const metrics = options.metrics ?? new MetricsRegistry("sigil_credhub");
  const requests = metrics.counter(
    "requests_total",
    "API requests by operation and result",
  );
  const app = new Hono<CredhubEnv>();
  for (const op of METRIC_OPERATIONS) {
    for (const result of AUDIT_RESULTS) {
      requests.inc({ operation: op, result }, 0);
    }
  }
  metrics.gauge(
    "credentials",
    "Credential names stored",
    () => [[{}, options.store.lastCount]],
  );
  const { audit, middleware } = createAudit(options.logger, requests);
  app.onError((err, c) => {
    if (err instanceof CredhubError) {
      return c.json(err.body ?? { error: err.message }, err.status as 400);
    }
    options.logger.error("credhub-request-failed", {
      reason: (err as Error).message,
    });
    return c.json({ error: MSG.INTERNAL }, 500);
  });
  app.notFound((c) => c.json({ error: MSG.BAD_REQUEST }, 404));
  app.get(
    "/info",
    (c) =>
      c.json({
        "auth-server": { url: options.authServerUrl },
        app: { name: "CredHub" },
      }),
  );
  app.get("/health", (c) => c.json({ status: "UP" }));
  app.get(
    "/metrics",
    async (c) => {
      // Fresh for the gauge (other replicas write to a shared store too).
      await options.store.count();
      return c.body(metrics.render(), 200, {
        "content-type": METRICS_CONTENT_TYPE,
      });
    },
  );
  // After CredHub's /info, so the CLI reads auth-server there (the token
  // endpoint's own /info only answers when it is served alone).
  if (options.uaa) app.route("/", options.uaa);
  app.use("/api/*", async (c, next) => {
    c.set("principal", await options.authenticate(c));
    await next();
  });
  app.use("/api/*", middleware);
  // VersionController.kt: authenticated; the CLI reads it at login and picks
  // the v2 permissions API for versions >= 2.
  app.get("/version", async (c) => {
    await options.authenticate(c);
    return c.json({ version: CREDHUB_API_VERSION });
  });
  registerData(app, options.store, audit);
  registerPermissions(app, options.store, audit);
  return app;
}

/** Reads a JSON body or answers CredHub's bad-request error. */
export async function jsonBody(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch (err) {
    throw new CredhubError("ERR_CREDHUB_BAD_REQUEST", 400, MSG.BAD_REQUEST, {
      cause: err,
    });
  }
}

/** Requires a scope of bearer callers (mTLS callers pass). */
export function requireScope(p: Principal, ...any: string[]): void {
  if (p.scopes && !any.some((s) => p.scopes!.includes(s))) {
    throw new CredhubError(
      "ERR_CREDHUB_SCOPE",
      403,
      `Insufficient scope for this resource: the token needs one of ${
        any.join(", ")
      }`,
    );
  }
}

/**
 * The CA's HTTP API (hono). Domain errors become HTTP statuses here, once.
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { METRICS_CONTENT_TYPE } from "../observe/mod.ts";
import { describeError } from "../common/errors.ts";
import { clientAddress } from "../common/listen.ts";
import type { Logger } from "../observe/mod.ts";
import { CaError } from "./errors.ts";
import type { CertificateAuthority } from "./_authority.ts";
import { jwks } from "../token/mod.ts";
import { mountStatus } from "../status/mod.ts";
import { caStatus } from "./_status.ts";

const STATUS: Record<string, ContentfulStatusCode> = {
  ERR_CA_REQUEST_INVALID: 400,
  ERR_CA_CSR_INVALID: 400,
  ERR_CA_IDENTITY_INVALID: 400,
  ERR_CA_UNAUTHENTICATED: 401,
  ERR_CA_TOKEN_REVOKED: 401,
  ERR_CA_FORBIDDEN: 403,
  ERR_CA_REVOKED: 403,
  ERR_CA_TOO_LARGE: 413,
  ERR_CA_RATE_LIMITED: 429,
  // The shared database is down or restarting: nothing was signed; another
  // replica (or this one, shortly) can answer.
  ERR_CA_LEDGER_UNAVAILABLE: 503,
};

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/**
 * Builds the hono app: `POST /v1/sign`, `GET /v1/bundle.pem` (roots),
 * `GET /v1/intermediates.pem` (current, then previous intermediates),
 * `GET /v1/jwks.json`, `GET /v1/crl.pem` (with a revocation store),
 * `GET /healthz`, `GET /metrics`, and the status page
 * `GET /status` (with `/status.json`).
 *
 * @param ca The authority that decides.
 * @param options `maxBodyBytes` (default 65536).
 * @returns The app; serve it with `Deno.serve(app.fetch)` or test with `app.request()`.
 *
 * @example
 * ```ts ignore
 * const app = createCaApp(ca);
 * const res = await app.request("/healthz");
 * ```
 */
export function createCaApp(
  ca: CertificateAuthority,
  options: { maxBodyBytes?: number; logger?: Logger } = {},
): Hono {
  const max = options.maxBodyBytes ?? 65536;
  const app = new Hono();
  const keys = jwks(ca.store);

  app.post(
    "/v1/sign",
    bodyLimit({
      maxSize: max,
      onError: (c) =>
        c.json(
          errorBody(
            "ERR_CA_TOO_LARGE",
            `Request body is larger than ${max} bytes`,
          ),
          413,
        ),
    }),
    async (c) => {
      const auth = c.req.header("authorization");
      const token = auth?.match(/^Bearer\s+(\S+)$/i)?.[1];
      // An unparsable body becomes `undefined`; the authority authenticates
      // first, so an anonymous caller learns nothing about the body rules.
      const body: unknown = await c.req.json().catch(() => undefined);
      const res = await ca.sign(body, token, { client: clientAddress(c.env) });
      return c.json(res, 201);
    },
  );

  app.get("/v1/bundle.pem", (c) => {
    c.header("content-type", "application/x-pem-file");
    return c.body(ca.store.bundlePem);
  });
  // The current intermediate first, then previous ones still valid (also
  // after one expires while the CA runs): for a
  // peer that must complete a chain it was sent without its intermediate.
  app.get("/v1/intermediates.pem", (c) => {
    c.header("content-type", "application/x-pem-file");
    const now = ca.now();
    return c.body(
      ca.store.intermediatePem + ca.store.previousIntermediates
        .filter((p) => p.notAfter.getTime() > now).map((p) => p.pem).join(""),
    );
  });
  app.get("/v1/jwks.json", async (c) => c.json(await keys));
  if (ca.revocations) {
    app.get("/v1/crl.pem", async (c) => {
      const pem = await ca.crlPem();
      c.header("content-type", "application/x-pem-file");
      c.header("cache-control", "no-cache");
      return c.body(pem);
    });
  }
  // Healthy means a sign could be answered now: the ledger takes a real
  // write (a CA whose every sign fails with ERR_CA_LEDGER is not healthy).
  let failing: string | undefined;
  app.get("/healthz", async (c) => {
    try {
      await ca.ledger.probe();
    } catch (err) {
      const reason = (err as Error).message;
      if (failing !== reason) {
        options.logger?.error("ca-unhealthy", { check: "ledger", reason });
      }
      failing = reason;
      return c.json({ status: "failing", check: "ledger", reason }, 503);
    }
    if (failing !== undefined) {
      options.logger?.info("ca-healthy", { check: "ledger" });
    }
    failing = undefined;
    return c.json({ status: "ok" });
  });
  app.get("/metrics", (c) => {
    c.header("content-type", METRICS_CONTENT_TYPE);
    return c.body(ca.metrics.render());
  });
  mountStatus(app, () => caStatus(ca, ca.now()));
  app.notFound((c) =>
    c.json(
      errorBody("ERR_NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`),
      404,
    )
  );
  app.onError((err, c) => {
    if (err instanceof CaError && STATUS[err.code]) {
      if (err.retryAfterSeconds !== undefined) {
        c.header("retry-after", String(err.retryAfterSeconds));
      } else if (STATUS[err.code] === 503) c.header("retry-after", "1");
      return c.json(errorBody(err.code, err.message), STATUS[err.code]!);
    }
    const code = err instanceof CaError ? err.code : "ERR_CA_INTERNAL";
    options.logger?.error("ca-request-failed", {
      code,
      client: clientAddress(c.env),
      path: c.req.path,
      reason: describeError(err),
    });
    return c.json(errorBody(code, "Internal error; see the CA log"), 500);
  });
  return app;
}

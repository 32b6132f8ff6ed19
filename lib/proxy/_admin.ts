/**
 * The admin API (loopback only): `/stats`, `/certs`, `/config_dump`, `/ready`,
 * `/metrics`. Built on hono; tested in-process with `app.request()`.
 * @module
 */
import { Hono } from "hono";
import { METRICS_CONTENT_TYPE } from "../observe/mod.ts";

/** What the admin API reads from the running proxy. */
export interface AdminView {
  stats(): unknown;
  certs(): unknown;
  configDump(): unknown;
  /** `ok` is true when every listener is bound and every app port accepts TCP. */
  ready(): Promise<{ ok: boolean; checks: unknown }>;
  metrics(): string;
}

/**
 * Builds the admin app.
 *
 * @example
 * ```ts
 * import { createAdminApp } from "./_admin.ts";
 * const app = createAdminApp({
 *   stats: () => ({}), certs: () => [], configDump: () => ({}), metrics: () => "",
 *   ready: () => Promise.resolve({ ok: true, checks: [] }),
 * });
 * const res = await app.request("/ready");
 * console.assert(res.status === 200);
 * ```
 */
export function createAdminApp(view: AdminView): Hono {
  const app = new Hono();
  app.get("/stats", (c) => c.json(view.stats()));
  app.get("/certs", (c) => c.json(view.certs()));
  app.get("/config_dump", (c) => c.json(view.configDump()));
  app.get("/ready", async (c) => {
    const r = await view.ready();
    return c.json(r, r.ok ? 200 : 503);
  });
  app.get(
    "/metrics",
    (c) =>
      c.body(view.metrics(), 200, { "content-type": METRICS_CONTENT_TYPE }),
  );
  app.notFound((c) =>
    c.json({
      error: "not found",
      endpoints: ["/stats", "/certs", "/config_dump", "/ready", "/metrics"],
    }, 404)
  );
  return app;
}

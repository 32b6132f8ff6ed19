/**
 * The admin API (loopback only): `/stats`, `/certs`, `/config_dump`, `/ready`,
 * `/metrics`, and the status page `/status` (with `/status.json`). Built on
 * hono; tested in-process with `app.request()`.
 * @module
 */
import { Hono } from "hono";
import { METRICS_CONTENT_TYPE } from "../observe/mod.ts";
import { mountStatus } from "../status/mod.ts";
import { proxyStatus } from "./_status.ts";
import type { ProxyStatusSource } from "./_status.ts";

/** What the admin API reads from the running proxy. */
export interface AdminView {
  stats(): ProxyStatusSource["stats"];
  certs(): ProxyStatusSource["certs"];
  configDump(): ProxyStatusSource["config"];
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
 *   stats: () => ({ instances: [] }), certs: () => [],
 *   configDump: () => ({ instances: [] }), metrics: () => "",
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
  mountStatus(app, () =>
    proxyStatus({
      stats: view.stats(),
      certs: view.certs(),
      config: view.configDump(),
      metrics: view.metrics(),
    }, Date.now()));
  app.notFound((c) =>
    c.json({
      error: "not found",
      endpoints: [
        "/stats",
        "/certs",
        "/config_dump",
        "/ready",
        "/metrics",
        "/status",
        "/status.json",
      ],
    }, 404)
  );
  return app;
}

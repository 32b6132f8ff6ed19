/**
 * Mounts a role's status page on its hono app: `GET /status` (HTML),
 * `GET /status.json`, and the two assets. Strict headers: the page loads
 * only its own stylesheet and script, so even a rendering bug could not run
 * injected script.
 * @module
 */
import type { Context, Hono, MiddlewareHandler } from "hono";
import { STATUS_CSS, STATUS_JS } from "./_assets.ts";
import { CaPage } from "./_ca_page.tsx";
import { ProxyPage } from "./_proxy_page.tsx";
import { RouterPage } from "./_router_page.tsx";
import type { RoleStatus } from "./_types.ts";

/** The page's Content-Security-Policy. */
export const STATUS_CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HEADERS = {
  "content-security-policy": STATUS_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/**
 * Renders a role's status as a complete HTML document.
 *
 * @example
 * ```ts
 * import { renderStatus } from "./_serve.tsx";
 * const html = renderStatus({
 *   role: "proxy", time: new Date(0).toISOString(), instances: [],
 * });
 * console.assert(html.startsWith("<!DOCTYPE html>"));
 * ```
 */
export function renderStatus(s: RoleStatus): string {
  const page = s.role === "router"
    ? <RouterPage s={s} />
    : s.role === "proxy"
    ? <ProxyPage s={s} />
    : <CaPage s={s} />;
  return "<!DOCTYPE html>\n" + String(page);
}

/** Options of {@linkcode mountStatus}. */
export interface MountStatusOptions {
  /** Runs before the page and its JSON (the role's read check). */
  guard?: MiddlewareHandler;
}

/**
 * Adds `/status`, `/status.json`, `/status/style.css` and `/status/page.js`.
 *
 * @param app The role's hono app.
 * @param build Takes the snapshot for one request.
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { mountStatus } from "./_serve.tsx";
 * const app = new Hono();
 * mountStatus(app, () => ({ role: "proxy", time: new Date().toISOString(), instances: [] }));
 * const res = await app.request("/status");
 * console.assert(res.headers.get("content-type")?.startsWith("text/html"));
 * ```
 */
export function mountStatus(
  app: Hono,
  build: (c: Context) => RoleStatus | Promise<RoleStatus>,
  options: MountStatusOptions = {},
): void {
  const asset = (body: string, type: string) => (c: Context) =>
    c.body(body, 200, {
      "content-type": type,
      "x-content-type-options": "nosniff",
      "cache-control": "max-age=300",
    });
  app.get("/status/style.css", asset(STATUS_CSS, "text/css; charset=utf-8"));
  app.get(
    "/status/page.js",
    asset(STATUS_JS, "text/javascript; charset=utf-8"),
  );
  const guard: MiddlewareHandler = options.guard ?? ((_c, next) => next());
  app.get(
    "/status",
    guard,
    async (c) =>
      c.body(renderStatus(await build(c)), 200, {
        ...HEADERS,
        "content-type": "text/html; charset=utf-8",
      }),
  );
  app.get("/status.json", guard, async (c) =>
    c.json(await build(c), 200, {
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    }));
}

/**
 * The demo app `sigil dev` runs behind each proxy: plain HTTP on loopback,
 * answering with its app name, instance id and index.
 * @module
 */

/** What `GET /credentials` answers. */
export interface DemoCredentials {
  status: number;
  /** `VCAP_SERVICES` as the app would see it, or why it got none. */
  body: string;
}

/** One demo app instance. */
export interface DemoInstance {
  app: string;
  appGuid: string;
  instanceId: string;
  index: number;
  /**
   * Interpolates this instance's `VCAP_SERVICES` (`sigil dev` does it as
   * `sigil launch` would); `/credentials` answers 404 without it.
   */
  credentials?: () => Promise<DemoCredentials>;
}

/** A running demo app. */
export interface RunningDemoApp {
  port: number;
  close(): Promise<void>;
}

/**
 * Starts a demo app instance on `127.0.0.1:0`.
 *
 * `GET /` answers `hello from app "hello" instance <id> (index 0)`; `GET /json`
 * the same as JSON plus the request headers the router added; `GET /login` sets
 * a `JSESSIONID` cookie (to see sticky sessions); `GET /credentials` shows the
 * instance's interpolated `VCAP_SERVICES` (see {@linkcode DemoInstance}).
 *
 * @example
 * ```ts ignore
 * const app = startDemoApp({ app: "hello", appGuid: "g", instanceId: "i", index: 0 });
 * await app.close();
 * ```
 */
export function startDemoApp(inst: DemoInstance): RunningDemoApp {
  const body =
    `hello from app "${inst.app}" instance ${inst.instanceId} (index ${inst.index})\n`;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/credentials") {
        const r = inst.credentials
          ? await inst.credentials()
          : { status: 404, body: `app "${inst.app}" has no service bindings` };
        return new Response(r.body + "\n", {
          status: r.status,
          headers: {
            "content-type": r.status === 200
              ? "application/json"
              : "text/plain; charset=utf-8",
            "x-instance-id": inst.instanceId,
          },
        });
      }
      if (url.pathname === "/json") {
        const headers: Record<string, string> = {};
        for (const [k, v] of req.headers) headers[k] = v;
        return Response.json({
          app: inst.app,
          app_guid: inst.appGuid,
          instance_id: inst.instanceId,
          index: inst.index,
          headers,
        });
      }
      if (url.pathname === "/login") {
        return new Response(body, {
          headers: {
            "set-cookie": `JSESSIONID=${crypto.randomUUID()}; Path=/; HttpOnly`,
          },
        });
      }
      return new Response(body, {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    },
  );
  return {
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}

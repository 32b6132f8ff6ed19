/**
 * HTTP through the router with an explicit Host header (fetch cannot set Host).
 * @module
 */
import { type Agent, request } from "node:http";

/** A response read to the end. */
export interface SimpleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * Sends one request to `127.0.0.1:port` with `Host: host`.
 *
 * @example
 * ```ts ignore
 * const r = await hostGet(8080, "hello.localhost", "/");
 * ```
 */
export function hostRequest(
  port: number,
  host: string,
  path = "/",
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    agent?: Agent;
  } = {},
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = request({
      hostname: "127.0.0.1",
      port,
      path,
      method: options.method ?? "GET",
      headers: { ...options.headers, host },
      agent: options.agent ?? false,
    }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on(
        "end",
        () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Shorthand for a GET. */
export function hostGet(
  port: number,
  host: string,
  path = "/",
  agent?: Agent,
): Promise<SimpleResponse> {
  return hostRequest(port, host, path, { agent });
}

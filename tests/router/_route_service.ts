/**
 * A test route service: an HTTPS server (certificate from the test PKI, IP
 * SAN 127.0.0.1) that records each request and, as CF route services do,
 * sends it on to its `X-CF-Forwarded-Url` through a router, with the
 * signature headers, answering with that response plus
 * `x-route-service: filtered`.
 * @module
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { testPki } from "./_helpers.ts";

/** A running test route service. */
export interface RouteService {
  url: string;
  seen: { url: string; headers: http.IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

/**
 * An HTTPS route service: records the request, sends it on to
 * X-CF-Forwarded-Url through the router (on `routerPort`) with the
 * signature headers, and answers with the app's response plus a header.
 * `hang` makes it never answer; `clientCa` makes it require a client
 * certificate from that CA.
 */
export async function startRouteService(
  routerPort: () => number,
  options: { hang?: boolean; clientCa?: string } = {},
): Promise<RouteService> {
  const pki = await testPki();
  const cred = await pki.issueClient({
    commonName: "route-service",
    ips: ["127.0.0.1"],
  });
  const seen: RouteService["seen"] = [];
  const server = https.createServer(
    {
      cert: cred.certPem,
      key: cred.keyPem,
      ...(options.clientCa
        ? { requestCert: true, rejectUnauthorized: true, ca: options.clientCa }
        : {}),
    },
    (req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        seen.push({ url: req.url ?? "", headers: req.headers, body });
        if (options.hang) return;
        const fwd = new URL(String(req.headers["x-cf-forwarded-url"]));
        const headers = { ...req.headers, host: fwd.host };
        delete headers.connection;
        const out = http.request({
          host: "127.0.0.1",
          port: routerPort(),
          method: req.method,
          path: fwd.pathname + fwd.search,
          headers,
          agent: false,
        }, (back) => {
          res.writeHead(back.statusCode ?? 502, {
            ...back.headers,
            "x-route-service": "filtered",
          });
          back.pipe(res);
        });
        out.on("error", () => res.writeHead(599).end());
        out.end(body);
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/filter?tenant=a`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

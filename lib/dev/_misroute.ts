/**
 * `sigil dev --misroute`: registers a stale endpoint (app hello's route
 * pointing at app other's proxy, claiming to be a hello instance) and shows
 * that the router refuses it during the TLS handshake and prunes it.
 * @module
 */
import { request } from "node:http";
import type { RunningDev } from "./_dev.ts";

/** GET through the router with a given Host header (fetch cannot set Host). */
function getVia(
  address: string,
  host: string,
  path: string,
): Promise<{ status: number; body: string }> {
  const [hostname, port] = [
    address.slice(0, address.lastIndexOf(":")),
    Number(address.slice(address.lastIndexOf(":") + 1)),
  ];
  return new Promise((resolve, reject) => {
    const req = request({
      hostname,
      port,
      path,
      headers: { host },
      agent: false,
    }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** What the demonstration observed. */
export interface MisrouteReport {
  stale: { address: string; claims: string; actually: string };
  requests: number;
  answeredBy: Record<string, number>;
  reachedOther: number;
  pruned: boolean;
  invalidIdCount: number;
}

/**
 * Runs the demonstration against a running `sigil dev`.
 *
 * @example
 * ```ts ignore
 * const report = await demonstrateMisroute(dev);
 * console.assert(report.reachedOther === 0);
 * ```
 */
export async function demonstrateMisroute(
  dev: RunningDev,
  requests = 12,
): Promise<MisrouteReport> {
  const hello = dev.info.instances.find((i) => i.app === "hello")!;
  const other = dev.info.instances.find((i) => i.app === "other")!;
  const token = (await Deno.readTextFile(dev.info.router.token_file)).trim();
  const stale = {
    host: "127.0.0.1",
    tls_port: other.tls_port,
    uris: ["hello.localhost"],
    app: hello.app_guid,
    private_instance_id: hello.instance_id,
    private_instance_index: String(hello.index),
    server_cert_domain_san: hello.instance_id,
  };
  const res = await fetch(`http://${dev.info.router.api}/v1/register`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(stale),
  });
  await res.body?.cancel();
  if (!res.ok) {
    throw new Error(
      `Cannot register the stale endpoint: router answered ${res.status}`,
    );
  }
  const answeredBy: Record<string, number> = {};
  let reachedOther = 0;
  for (let i = 0; i < requests; i++) {
    const r = await getVia(dev.info.router.http, "hello.localhost", "/json");
    const text = r.body;
    let key = `HTTP ${r.status} ${text.trim().slice(0, 60)}`;
    try {
      const j = JSON.parse(text);
      key = `${j.app} instance ${j.instance_id}`;
      if (j.app !== "hello") reachedOther++;
    } catch {
      // an error body
    }
    answeredBy[key] = (answeredBy[key] ?? 0) + 1;
  }
  const endpoints = dev.router.registry.lookup("hello.localhost", "/");
  const staleKey = `127.0.0.1:${other.tls_port}`;
  const pruned = endpoints?.get(staleKey) === undefined;
  const m = /backend_invalid_id(?:_total)?(?:\{[^}]*\})? (\d+)/.exec(
    dev.router.metrics(),
  );
  return {
    stale: {
      address: staleKey,
      claims: `hello instance ${hello.instance_id}`,
      actually: `other instance ${other.instance_id}`,
    },
    requests,
    answeredBy,
    reachedOther,
    pruned,
    invalidIdCount: m ? Number(m[1]) : 0,
  };
}

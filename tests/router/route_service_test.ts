/**
 * Route services end to end through `sigil router`: a real HTTPS route
 * service in front of an app instance, behaving as CF's route services do
 * (receive the request, send it on to `X-CF-Forwarded-Url` with the
 * signature headers). Cases mirror gorouter's `handlers/routeservice_test.go`
 * and `proxy/route_service_test.go`: forwarded with the signed URL, back to
 * the app with the headers stripped, a missing/foreign/expired signature,
 * a signature for another route, the previous secret, route services
 * disabled, WebSockets, an unreachable or untrusted service, the timeout.
 */
import assert from "node:assert/strict";
import https from "node:https";
import type { AddressInfo } from "node:net";
import {
  HEADER_FORWARDED_URL,
  HEADER_METADATA,
  HEADER_SIGNATURE,
  RouteServiceSigner,
} from "../../lib/router/_route_service.ts";
import type { RegistryMessage } from "../../lib/routes/mod.ts";
import { RouterSection } from "../../lib/config/mod.ts";
import { freePort } from "../_helpers/ports.ts";
import {
  header,
  instanceBackend,
  request,
  startTestRouter,
  testPki,
} from "./_helpers.ts";
import type { TestRouter } from "./_helpers.ts";
import { startRouteService } from "./_route_service.ts";

const SECRET = "route-services-secret";
const PREVIOUS = "route-services-secret-before";
const HOST = "rs.example.com";

async function routerWithCa(
  extra: Record<string, unknown> = {},
): Promise<TestRouter> {
  const pki = await testPki();
  const caFile = await Deno.makeTempFile({ suffix: ".pem" });
  await Deno.writeTextFile(caFile, pki.rootPem);
  try {
    return await startTestRouter({
      route_services_secret: SECRET,
      route_services_secret_decrypt_only: PREVIOUS,
      route_services_recommend_https: false,
      route_services: { ca: caFile },
      ...extra,
    });
  } finally {
    await Deno.remove(caFile); // read at start
  }
}

function register(
  t: TestRouter,
  port: number,
  instanceId: string,
  uri: string,
  routeServiceUrl?: string,
): void {
  const msg: RegistryMessage = {
    host: "127.0.0.1",
    tls_port: port,
    uris: [uri],
    server_cert_domain_san: instanceId,
    private_instance_id: instanceId,
    ...(routeServiceUrl ? { route_service_url: routeServiceUrl } : {}),
  };
  t.router.apply("register", msg);
}

/** A request as the route service would send it back, signed by `signer`. */
function signedBack(
  t: TestRouter,
  signer: RouteServiceSigner,
  forwarded: string,
  at = Date.now(),
  host = HOST,
) {
  const h = signer.sign(forwarded, at);
  const u = new URL(forwarded);
  return request(t.url, host, {
    path: u.pathname + u.search,
    headers: {
      [HEADER_SIGNATURE]: h.signature,
      [HEADER_METADATA]: h.metadata,
      [HEADER_FORWARDED_URL]: forwarded,
    },
  });
}

Deno.test("a route bound to a route service goes through it and back to the app (gorouter handlers/routeservice_test.go)", async () => {
  const t = await routerWithCa();
  const rs = await startRouteService(() => t.router.port);
  const app = await instanceBackend(t, "app", "rs-app-1");
  const other = await instanceBackend(t, "other", "rs-other-1");
  try {
    register(t, app.port, "rs-app-1", HOST, rs.url);
    register(t, other.port, "rs-other-1", "other.example.com");
    const res = await request(t.url, `${HOST}:80`, {
      method: "POST",
      path: "/orders?id=1&x=%2F",
      body: "a body worth keeping",
      headers: { "content-type": "text/plain" },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(header(res, "x-route-service"), "filtered");
    const echoed = JSON.parse(res.text);
    assert.equal(echoed.backend, "app");
    assert.equal(echoed.body, "a body worth keeping");
    assert.equal(echoed.url, "/orders?id=1&x=%2F");
    // The app never sees the route-service headers.
    for (const h of [HEADER_SIGNATURE, HEADER_METADATA, HEADER_FORWARDED_URL]) {
      assert.equal(echoed.headers[h.toLowerCase()], undefined, h);
    }
    // What the route service got: its own path, Host, the signed URL.
    const seen = rs.seen[0]!;
    assert.equal(seen.url, "/filter?tenant=a");
    assert.equal(seen.body, "a body worth keeping");
    assert.equal(seen.headers.host, new URL(rs.url).host);
    const forwarded = `http://${HOST}/orders?id=1&x=%2F`;
    assert.equal(seen.headers["x-cf-forwarded-url"], forwarded);
    assert.ok(String(seen.headers["x-forwarded-for"]).includes("127.0.0.1"));
    const c = new RouteServiceSigner(SECRET).verify(
      String(seen.headers["x-cf-proxy-signature"]),
      String(seen.headers["x-cf-proxy-metadata"]),
      Date.now(),
    );
    assert.equal(c.forwardedUrl, forwarded);
    // Two requests logged: client → router → service, service → router → app.
    assert.equal(t.access.length, 2);
    // The inner one (to the app) ends first; the route-service leg has no
    // backend endpoint.
    assert.deepEqual(t.access.map((a) => a.backend), [
      `127.0.0.1:${app.port}`,
      "",
    ]);

    // Back from the service, signed with the previous (decrypt-only) secret.
    const prev = await signedBack(
      t,
      new RouteServiceSigner(PREVIOUS),
      `http://${HOST}/p`,
    );
    assert.equal(prev.status, 200, prev.text);
    assert.equal(JSON.parse(prev.text).backend, "app");
    // As gorouter: the signature names the route, not the exact URL, so it
    // is accepted for another path of the same route while it is fresh.
    const h = new RouteServiceSigner(SECRET).sign(
      `http://${HOST}/p`,
      Date.now(),
    );
    const replay = await request(t.url, HOST, {
      path: "/elsewhere",
      headers: {
        [HEADER_SIGNATURE]: h.signature,
        [HEADER_METADATA]: h.metadata,
      },
    });
    assert.equal(JSON.parse(replay.text).url, "/elsewhere");

    const cases: {
      name: string;
      send: () => ReturnType<typeof request>;
      status: number;
      body: RegExp;
    }[] = [
      {
        name: "signature but no metadata header",
        send: () =>
          request(t.url, HOST, {
            headers: { [HEADER_SIGNATURE]: "abcd" },
          }),
        status: 502,
        body:
          /^502 Bad Gateway: Failed to validate Route Service Signature: no metadata found/,
      },
      {
        name: "a request header key does not match the crypto key",
        send: () =>
          signedBack(t, new RouteServiceSigner("other"), `http://${HOST}/`),
        status: 502,
        body:
          /Failed to validate Route Service Signature: message authentication failed/,
      },
      {
        name: "an expired route service signature header",
        send: () =>
          signedBack(
            t,
            new RouteServiceSigner(SECRET),
            `http://${HOST}/`,
            Date.now() - 61_000,
          ),
        status: 504,
        body:
          /^504 Gateway Timeout: Failed to validate Route Service Signature: route service request expired/,
      },
      {
        name: "the signature's forwarded_url does not match the request",
        send: async () => {
          const h = new RouteServiceSigner(SECRET).sign(
            "http://other.example.com/",
            Date.now(),
          );
          return await request(t.url, HOST, {
            headers: {
              [HEADER_SIGNATURE]: h.signature,
              [HEADER_METADATA]: h.metadata,
            },
          });
        },
        status: 502,
        body: /does not match the original request URL other\.example\.com\//,
      },
      {
        name: "the signature's forwarded_url is not in the routing table",
        send: async () => {
          const h = new RouteServiceSigner(SECRET).sign(
            "http://gone.example.com/",
            Date.now(),
          );
          return await request(t.url, HOST, {
            headers: {
              [HEADER_SIGNATURE]: h.signature,
              [HEADER_METADATA]: h.metadata,
            },
          });
        },
        status: 502,
        body:
          /original request URL gone\.example\.com\/ does not exist in the routing table/,
      },
      {
        name: "websocket requests are not supported",
        send: () =>
          request(t.url, HOST, {
            headers: { connection: "upgrade", upgrade: "websocket" },
          }),
        status: 503,
        body:
          /Websocket requests are not supported for routes bound to Route Services/,
      },
    ];
    const appCalls = app.seen.length;
    for (const c of cases) {
      const r = await c.send();
      assert.equal(r.status, c.status, `${c.name}: ${r.text}`);
      assert.match(r.text, c.body, c.name);
    }
    assert.equal(
      app.seen.length,
      appCalls,
      "no refused request reached the app",
    );
    const ws = await cases.at(-1)!.send();
    assert.equal(header(ws, "x-cf-routererror"), "route_service_unsupported");
    assert.ok(
      t.logs.some((l) => l.event === "signature-validation-failed"),
    );
    // The secret is in no log line.
    assert.ok(!JSON.stringify(t.logs).includes(SECRET));
  } finally {
    await rs.close();
    await app.close();
    await other.close();
    await t.close();
  }
});

Deno.test("RouterSection: route-service keys default as gorouter and refuse a lone decrypt-only secret", () => {
  const off = { api: { enabled: false } };
  const d = RouterSection.parse(off);
  assert.equal(d.route_services_secret, undefined);
  assert.equal(d.route_services_timeout, 60_000);
  assert.equal(d.route_services_recommend_https, true);
  assert.deepEqual(d.route_services, {
    skip_ssl_validation: false,
    max_attempts: 3,
  });
  const bad = RouterSection.safeParse({
    ...off,
    route_services_secret_decrypt_only: "old",
  });
  assert.equal(bad.success, false);
  assert.match(
    JSON.stringify(bad.error?.issues),
    /route_services_secret_decrypt_only needs route_services_secret/,
  );
  assert.ok(!JSON.stringify(bad.error?.issues).includes('"old"'));
  const lone = RouterSection.safeParse({
    ...off,
    route_services: { cert: "/c.pem" },
  });
  assert.equal(lone.success, false);
});

Deno.test("route services disabled (no route_services_secret): 502 route_service_unsupported", async () => {
  const t = await startTestRouter();
  const app = await instanceBackend(t, "app", "rs-app-2");
  try {
    register(t, app.port, "rs-app-2", HOST, "https://127.0.0.1:1/x");
    const res = await request(t.url, HOST);
    assert.equal(res.status, 502);
    assert.equal(header(res, "x-cf-routererror"), "route_service_unsupported");
    assert.match(res.text, /Support for route services is disabled\./);
    assert.equal(app.seen.length, 0);
  } finally {
    await app.close();
    await t.close();
  }
});

Deno.test("an unreachable, untrusted or silent route service gets gorouter's error statuses", async () => {
  const t = await routerWithCa({ request_timeout: "1s" });
  const untrusting = await startTestRouter({
    route_services_secret: SECRET,
  });
  const rs = await startRouteService(() => t.router.port);
  const silent = await startRouteService(() => t.router.port, {
    hang: true,
  });
  const app = await instanceBackend(t, "app", "rs-app-3");
  try {
    // Nothing listens: dial failures, retried, then 502 endpoint_failure.
    register(
      t,
      app.port,
      "rs-app-3",
      "down.example.com",
      `https://127.0.0.1:${freePort()}/`,
    );
    const down = await request(t.url, "down.example.com");
    assert.equal(down.status, 502, down.text);
    assert.equal(
      header(down, "x-cf-routererror"),
      "endpoint_failure (ECONNREFUSED)",
    );
    assert.ok(
      t.logs.filter((l) => l.event === "route-service-connection-failed")
        .length >= 3,
    );
    // The service never answers: the request timeout gives 504.
    register(t, app.port, "rs-app-3", "slow.example.com", silent.url);
    const slow = await request(t.url, "slow.example.com");
    assert.equal(slow.status, 504, slow.text);
    assert.equal(silent.seen.length, 1);
    // A router that does not trust the service's CA: 526.
    register(untrusting, app.port, "rs-app-3", HOST, rs.url);
    const untrusted = await request(untrusting.url, HOST);
    assert.equal(untrusted.status, 526, untrusted.text);
    assert.match(header(untrusted, "x-cf-routererror"), /^endpoint_failure \(/);
    assert.equal(rs.seen.length, 0);
    assert.equal(app.seen.length, 0);
  } finally {
    await rs.close();
    await silent.close();
    await app.close();
    await untrusting.close();
    await t.close();
  }
});

Deno.test("route_services.cert and key are presented to a route service that requires a client certificate", async () => {
  const pki = await testPki();
  const client = await pki.issueClient({ commonName: "router-to-rs" });
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
  await Deno.writeTextFile(`${dir}/c.crt`, client.certPem);
  await Deno.writeTextFile(`${dir}/c.key`, client.keyPem, { mode: 0o600 });
  const withCert = await startTestRouter({
    route_services_secret: SECRET,
    route_services: {
      ca: `${dir}/ca.pem`,
      cert: `${dir}/c.crt`,
      key: `${dir}/c.key`,
    },
  });
  const without = await startTestRouter({
    route_services_secret: SECRET,
    route_services: { ca: `${dir}/ca.pem` },
  });
  const rs = await startRouteService(() => withCert.router.port, {
    clientCa: pki.rootPem,
  });
  const app = await instanceBackend(withCert, "app", "rs-app-4");
  try {
    for (const t of [withCert, without]) {
      register(t, app.port, "rs-app-4", HOST, rs.url);
    }
    const ok = await request(withCert.url, HOST);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(JSON.parse(ok.text).backend, "app");
    const refused = await request(without.url, HOST);
    // gorouter's RemoteFailedCertCheck: 496 for a route service too.
    assert.equal(refused.status, 496, refused.text);
    assert.match(header(refused, "x-cf-routererror"), /^endpoint_failure \(/);
    assert.equal(rs.seen.length, 1);
  } finally {
    await rs.close();
    await app.close();
    await withCert.close();
    await without.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a route service that breaks off its response mid-body does not leave the client hanging", async () => {
  const t = await routerWithCa();
  const pki = await testPki();
  const cred = await pki.issueClient({ ips: ["127.0.0.1"] });
  const broken = https.createServer(
    { cert: cred.certPem, key: cred.keyPem },
    (_req, res) => {
      res.writeHead(200, { "content-length": "100000" });
      res.write("x".repeat(70_000), () => res.socket?.destroy());
    },
  );
  await new Promise<void>((r) => broken.listen(0, "127.0.0.1", r));
  const app = await instanceBackend(t, "app", "rs-app-5");
  try {
    const port = (broken.address() as AddressInfo).port;
    register(t, app.port, "rs-app-5", HOST, `https://127.0.0.1:${port}/`);
    const outcome = await request(t.url, HOST).then(
      (r) => `complete ${r.text.length}`,
      (err) => `error ${(err as Error).message}`,
    );
    // The body ends early (an error or a short body), never all 100000 bytes.
    assert.ok(!outcome.startsWith("complete 100000"), outcome);
    assert.equal(app.seen.length, 0);
  } finally {
    broken.closeAllConnections();
    await new Promise((r) => broken.close(r));
    await app.close();
    await t.close();
  }
});

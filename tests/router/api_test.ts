import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { RouterSection } from "../../lib/config/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { startRouter } from "../../lib/router/mod.ts";
import { startTestRouter } from "./_helpers.ts";

const MSG = {
  host: "10.0.0.5",
  tls_port: 61001,
  uris: ["hello.example.com"],
  server_cert_domain_san: "inst-1",
  private_instance_id: "inst-1",
  app: "app-1",
};

function post(
  url: string,
  path: string,
  body: unknown,
  token?: string,
): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

Deno.test("registration API requires a valid routes.write token", async () => {
  const t = await startTestRouter();
  try {
    const none = await post(t.apiUrl, "/v1/register", MSG);
    assert.equal(none.status, 401);
    assert.equal((await none.json()).error, "unauthorized");

    const garbage = await post(t.apiUrl, "/v1/register", MSG, "not.a.jwt");
    assert.equal(garbage.status, 401);
    await garbage.body?.cancel();

    const expired = await post(
      t.apiUrl,
      "/v1/register",
      MSG,
      await t.token("routes.write", { expSecondsFromNow: -60 }),
    );
    assert.equal(expired.status, 401);
    assert.match((await expired.json()).message, /expired/);

    const wrongIssuer = await post(
      t.apiUrl,
      "/v1/register",
      MSG,
      await t.token("routes.write", { issuer: "someone-else" }),
    );
    assert.equal(wrongIssuer.status, 401);
    await wrongIssuer.body?.cancel();

    const wrongScope = await post(
      t.apiUrl,
      "/v1/register",
      MSG,
      await t.token("cert.issue"),
    );
    assert.equal(wrongScope.status, 403);
    assert.equal((await wrongScope.json()).error, "forbidden");

    // A key the router does not trust.
    const other = await generateKeyPair("ES256");
    const forged = await new SignJWT({ scope: "routes.write" })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("x")
      .setExpirationTime("5m").sign(other.privateKey);
    const bad = await post(t.apiUrl, "/v1/register", MSG, forged);
    assert.equal(bad.status, 401);
    await bad.body?.cancel();
    assert.equal(t.router.registry.endpointCount, 0);
    // No token text in logs.
    assert.ok(!JSON.stringify(t.logs).includes(forged));

    const ok = await post(
      t.apiUrl,
      "/v1/register",
      MSG,
      await t.token("cert.issue routes.write"),
    );
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    const routes = await (await fetch(`${t.apiUrl}/routes`)).json();
    const entry = routes["hello.example.com"][0];
    assert.equal(entry.address, "10.0.0.5:61001");
    assert.equal(entry.tls, true);
    assert.equal(entry.private_instance_id, "inst-1");
    assert.equal(entry.server_cert_domain_san, "inst-1");
    assert.equal(entry.ttl, 120);

    const un = await post(t.apiUrl, "/v1/unregister", MSG, await t.token());
    assert.equal(un.status, 200);
    await un.body?.cancel();
    assert.equal(t.router.registry.endpointCount, 0);
  } finally {
    await t.close();
  }
});

Deno.test("registration API rejects malformed messages with a counted reason", async () => {
  const t = await startTestRouter({ api: { max_body_bytes: 1024 } });
  try {
    const token = await t.token();
    t.router.apply("register", {
      host: "10.0.0.9",
      port: 8080,
      uris: ["keep.example.com"],
    });
    const cases: Array<[unknown, string]> = [
      ["{not json", "invalid-json"],
      [{ port: 8080, uris: ["a.example.com"] }, "invalid-message"],
      [{ host: "h", port: 70000, uris: ["a.example.com"] }, "invalid-message"],
      [{ host: "h", port: 8080, uris: "a.example.com" }, "invalid-message"],
      [
        { host: "h", port: 8080, uris: ["http://a.example.com"] },
        "invalid-message",
      ],
      // gorouter refuses only this one (mbus/subscriber.go ValidateMessage).
      [
        {
          host: "h",
          port: 8080,
          uris: ["a.example.com"],
          route_service_url: "http://rs.example.com",
        },
        "invalid-message",
      ],
      [{ host: "h", port: 8080, uris: ["bad host"] }, "invalid-message"],
    ];
    for (const [body, reason] of cases) {
      const res = await post(t.apiUrl, "/v1/register", body, token);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal((await res.json()).error, reason);
    }
    const big = await post(t.apiUrl, "/v1/register", {
      ...MSG,
      pad: "x".repeat(2000),
    }, token);
    assert.equal(big.status, 413);
    await big.body?.cancel();
    // The table is untouched.
    assert.equal(t.router.registry.endpointCount, 1);
    const metrics = await (await fetch(`${t.apiUrl}/metrics`)).text();
    assert.match(
      metrics,
      /sigil_router_registry_messages_total\{source="http",action="register",result="invalid-message"\} 6/,
    );
    assert.match(
      metrics,
      /sigil_router_registry_messages_total\{source="http",action="register",result="invalid-json"\} 1/,
    );
    assert.match(metrics, /sigil_router_routes 1/);
    assert.ok(t.logs.some((l) => l.event === "registry-message-rejected"));
  } finally {
    await t.close();
  }
});

Deno.test("registration API verifies tokens against the CA's JWKS URL", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256", {
    extractable: true,
  });
  const jwk = {
    ...(await exportJWK(publicKey)),
    kid: "k1",
    alg: "ES256",
    use: "sig",
  };
  const jwks = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ keys: [jwk] }),
  );
  const config = RouterSection.parse({
    listen: "127.0.0.1:0",
    api: {
      listen: "127.0.0.1:0",
      jwks_url: `http://127.0.0.1:${jwks.addr.port}/v1/jwks.json`,
    },
    access_log: { enabled: false },
  });
  const router = await startRouter(config, {
    logger: createLogger("router", { sink: () => {} }),
  });
  try {
    const api = `http://127.0.0.1:${router.apiPort}`;
    const token = await new SignJWT({ scope: "routes.write" })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("proxy-1")
      .setExpirationTime("5m").sign(privateKey);
    const res = await post(api, "/v1/register", MSG, token);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(router.registry.endpointCount, 1);
    const health = await fetch(`${api}/healthz`);
    assert.equal(await health.text(), "ok\n");
  } finally {
    await router.close();
    await jwks.shutdown();
  }
});

Deno.test("registration API answers 503 while the CA's key set is unreachable", async () => {
  const gone = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("x"),
  );
  const port = gone.addr.port;
  await gone.shutdown();
  const router = await startRouter(
    RouterSection.parse({
      listen: "127.0.0.1:0",
      api: {
        listen: "127.0.0.1:0",
        jwks_url: `http://127.0.0.1:${port}/v1/jwks.json`,
      },
      access_log: { enabled: false },
    }),
    { logger: createLogger("router", { sink: () => {} }) },
  );
  try {
    const { privateKey } = await generateKeyPair("ES256");
    const token = await new SignJWT({ scope: "routes.write" })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("p")
      .setExpirationTime("5m").sign(privateKey);
    const res = await post(
      `http://127.0.0.1:${router.apiPort}`,
      "/v1/register",
      MSG,
      token,
    );
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error, "auth_unavailable");
  } finally {
    await router.close();
  }
});

Deno.test("registration API reads the auth scheme case-insensitively, like the CA", async () => {
  const t = await startTestRouter();
  try {
    const token = await t.token("routes.write");
    for (const scheme of ["bearer", "BEARER"]) {
      const res = await fetch(`${t.apiUrl}/v1/register`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `${scheme} ${token}`,
        },
        body: JSON.stringify(MSG),
      });
      assert.equal(res.status, 200, scheme);
      await res.body?.cancel();
    }
    const basic = await fetch(`${t.apiUrl}/v1/register`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa("a:b")}` },
      body: JSON.stringify(MSG),
    });
    assert.equal(basic.status, 401);
    await basic.body?.cancel();
  } finally {
    await t.close();
  }
});

// gorouter's /routes body: route/pool.go Endpoint.MarshalJSON (field order,
// omitempty fields) and registry/registry_test.go "MarshalJSON".
Deno.test("GET /routes answers in gorouter's shape: field order, ttl = stale threshold, empty optional fields left out", async () => {
  const t = await startTestRouter();
  try {
    t.router.apply("register", {
      host: "10.0.0.5",
      tls_port: 61001,
      uris: ["hello.example.com"],
      private_instance_id: "inst-1",
      server_cert_domain_san: "inst-1",
      stale_threshold_in_seconds: 30,
      tags: { component: "route-emitter" },
      availability_zone: "z1",
      isolation_segment: "seg-a",
      options: { loadbalancing: "least-connection" },
    });
    t.router.apply("register", {
      host: "10.0.0.6",
      port: 8080,
      uris: ["plain.example.com"],
    });
    const routes = await (await fetch(`${t.apiUrl}/routes`)).json();
    assert.deepEqual(Object.keys(routes["hello.example.com"][0]), [
      "address",
      "availability_zone",
      "protocol",
      "tls",
      "ttl",
      "tags",
      "isolation_segment",
      "private_instance_id",
      "server_cert_domain_san",
      "load_balancing_algorithm",
    ]);
    assert.deepEqual(routes["hello.example.com"][0], {
      address: "10.0.0.5:61001",
      availability_zone: "z1",
      protocol: "http1",
      tls: true,
      ttl: 30,
      tags: { component: "route-emitter" },
      isolation_segment: "seg-a",
      private_instance_id: "inst-1",
      server_cert_domain_san: "inst-1",
      load_balancing_algorithm: "least-connection",
    });
    assert.deepEqual(routes["plain.example.com"], [{
      address: "10.0.0.6:8080",
      availability_zone: "",
      protocol: "http1",
      tls: false,
      ttl: 120,
      tags: null,
    }]);
  } finally {
    await t.close();
  }
});

Deno.test("registration API accepts a message with an ignorable field and says what it ignored", async () => {
  const t = await startTestRouter();
  try {
    const res = await post(t.apiUrl, "/v1/register", {
      host: "10.0.0.7",
      port: 8080,
      uris: ["a.example.com?x=1", "bad host"],
      protocol: "gopher",
    }, await t.token());
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(body.ignored.map((i: { field: string }) => i.field), [
      "uris.0",
      "uris.1",
      "protocol",
    ]);
    assert.equal(t.router.registry.lookup("a.example.com", "/")?.size, 1);
  } finally {
    await t.close();
  }
});

Deno.test("router /healthz is 503 naming the JWKS URL and the error while the key set cannot be fetched, and ok again when it returns", async () => {
  const { publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  const serveJwks = (port: number) =>
    Deno.serve(
      { hostname: "127.0.0.1", port, onListen: () => {} },
      () => Response.json({ keys: [jwk] }),
    );
  let jwks = serveJwks(0);
  const port = jwks.addr.port;
  const url = `http://127.0.0.1:${port}/v1/jwks.json`;
  const logs: Record<string, unknown>[] = [];
  const router = await startRouter(
    RouterSection.parse({
      listen: "127.0.0.1:0",
      api: { listen: "127.0.0.1:0", jwks_url: url },
      access_log: { enabled: false },
    }),
    {
      logger: createLogger("router", {
        sink: (l) => logs.push(JSON.parse(l)),
      }),
    },
  );
  const health = async () => {
    const res = await fetch(`http://127.0.0.1:${router.apiPort}/healthz`);
    return { status: res.status, text: await res.text() };
  };
  // Answers are reused for 5 s, so wait for the change (bounded).
  const waitFor = async (status: number) => {
    for (let i = 0; i < 100; i++) {
      const h = await health();
      if (h.status === status) return h;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`/healthz never answered ${status}`);
  };
  try {
    assert.deepEqual(await health(), { status: 200, text: "ok\n" });
    await jwks.shutdown();
    const bad = await waitFor(503);
    assert.ok(bad.text.includes(url), bad.text);
    assert.match(bad.text, /unavailable: .*(refused|connect)/i);
    const logged = logs.find((l) => l.event === "jwks-unavailable");
    assert.ok(logged, JSON.stringify(logs));
    assert.equal(logged.url, url);
    assert.match(String(logged.error), /refused|connect/i);
    jwks = serveJwks(port);
    assert.equal((await waitFor(200)).text, "ok\n");
    assert.ok(logs.some((l) => l.event === "jwks-available" && l.url === url));
  } finally {
    await router.close();
    await jwks.shutdown();
  }
});

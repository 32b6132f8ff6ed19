/**
 * The router's own answers before any backend is tried, translated from
 * gorouter's handlers/lookup_test.go (and errorwriter/error_writer.go for
 * the body and headers): 400 empty_host, 404 unknown_route, 503
 * no_endpoints for a route whose pool emptied, X-CF-App-Instance.
 */
import assert from "node:assert/strict";
import { header, request, startBackend, startTestRouter } from "./_helpers.ts";

const APP = "7f3e5a4c-9b1d-4e2f-8a6b-0c1d2e3f4a5b";

Deno.test("lookup: unknown route is 404 unknown_route, never cached, plain text (lookup_test.go 'when there is no pool')", async () => {
  const t = await startTestRouter();
  try {
    const res = await request(t.url, "nope.example.com:8443");
    assert.equal(res.status, 404);
    assert.equal(header(res, "x-cf-routererror"), "unknown_route");
    assert.equal(header(res, "cache-control"), "no-cache, no-store");
    assert.equal(header(res, "x-content-type-options"), "nosniff");
    assert.equal(
      res.text,
      "404 Not Found: Requested route ('nope.example.com:8443') does not exist.\n",
    );
  } finally {
    await t.close();
  }
});

Deno.test("lookup: a Host that is the client's own address is 400 empty_host (lookup_test.go 'when the host is the remote address')", async () => {
  const t = await startTestRouter();
  try {
    const res = await request(t.url, "127.0.0.1");
    assert.equal(res.status, 400);
    assert.equal(header(res, "x-cf-routererror"), "empty_host");
    assert.equal(header(res, "cache-control"), "public,max-age=2");
    assert.equal(res.text, "400 Bad Request: Request had empty Host header\n");
  } finally {
    await t.close();
  }
});

Deno.test("lookup: a route whose last endpoint left is 503 no_endpoints until empty_pool_timeout, then 404 (lookup_test.go 'when the pool is empty')", async () => {
  const t = await startTestRouter({ empty_pool_timeout: "1500ms" });
  const be = await startBackend({ name: "A" });
  try {
    const msg = {
      host: "127.0.0.1",
      port: be.port,
      uris: ["gone.example.com/api"],
    };
    t.router.apply("register", msg);
    assert.equal(
      (await request(t.url, "gone.example.com", { path: "/api" })).status,
      200,
    );
    t.router.apply("unregister", msg);
    const res = await request(t.url, "gone.example.com", {
      path: "/api/v1?x=1",
    });
    assert.equal(res.status, 503);
    assert.equal(header(res, "x-cf-routererror"), "no_endpoints");
    assert.equal(header(res, "cache-control"), "public,max-age=2");
    assert.equal(
      res.text,
      "503 Service Unavailable: Requested route ('gone.example.com') has no available endpoints.\n",
    );
    // Another path of the same host never had a route: still 404.
    assert.equal(
      (await request(t.url, "gone.example.com", { path: "/other" })).status,
      404,
    );
    // Registered again: served again.
    t.router.apply("register", msg);
    assert.equal(
      (await request(t.url, "gone.example.com", { path: "/api" })).status,
      200,
    );
    t.router.apply("unregister", msg);
    const deadline = Date.now() + 10_000;
    let status = 503;
    while (status === 503 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      status =
        (await request(t.url, "gone.example.com", { path: "/api" })).status;
    }
    assert.equal(status, 404, "after empty_pool_timeout the route is gone");
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("lookup: X-CF-App-Instance targets one instance, is not forwarded, and answers 400 as gorouter when bad or unknown (lookup_test.go 'X-CF-App-Instance')", async () => {
  const t = await startTestRouter();
  const a = await startBackend({ name: "A" });
  const b = await startBackend({ name: "B" });
  try {
    for (const [be, index] of [[a, "0"], [b, "1"]] as const) {
      t.router.apply("register", {
        host: "127.0.0.1",
        port: be.port,
        uris: ["app.example.com"],
        app: APP,
        private_instance_index: index,
      });
    }
    for (let i = 0; i < 4; i++) {
      const res = await request(t.url, "app.example.com", {
        headers: { "x-cf-app-instance": `${APP}:1` },
      });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.text).backend, "B");
    }
    assert.equal(a.seen.length, 0);
    assert.equal(b.seen[0]!.headers["x-cf-app-instance"], undefined);

    const bad = await request(t.url, "app.example.com", {
      headers: { "x-cf-app-instance": "not-a-guid:1" },
    });
    assert.equal(bad.status, 400);
    assert.equal(
      header(bad, "x-cf-routererror"),
      "invalid_cf_app_instance_header",
    );
    assert.equal(header(bad, "cache-control"), "no-cache, no-store");
    assert.equal(
      bad.text,
      "400 Bad Request: Invalid X-CF-App-Instance Header\n",
    );

    const missing = await request(t.url, "app.example.com", {
      headers: { "x-cf-app-instance": `${APP}:7` },
    });
    assert.equal(missing.status, 400);
    assert.equal(header(missing, "x-cf-routererror"), "unknown_route");
    assert.equal(
      missing.text,
      `400 Bad Request: Requested instance ('7') with guid ('${APP}') does not exist for route ('app.example.com')\n`,
    );
  } finally {
    await a.close();
    await b.close();
    await t.close();
  }
});

// RFC 9112 3.2.2; Go's server sets r.Host from an absolute-form target, so
// gorouter routes by it and forwards it as Host.
Deno.test("lookup: an absolute-form request target routes by its authority, not the Host header", async () => {
  const t = await startTestRouter();
  const a = await startBackend({ name: "A" });
  const b = await startBackend({ name: "B" });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: a.port,
      uris: ["a.test"],
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      port: b.port,
      uris: ["b.test"],
    });
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: t.router.port,
    });
    await conn.write(new TextEncoder().encode(
      "GET http://a.test/x?y=1 HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    ));
    let text = "";
    const buf = new Uint8Array(8192);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.equal(b.seen.length, 0);
    assert.equal(a.seen[0]!.headers["host"], "a.test");
    assert.equal(a.seen[0]!.url, "/x?y=1");
  } finally {
    await a.close();
    await b.close();
    await t.close();
  }
});

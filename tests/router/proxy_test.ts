import assert from "node:assert/strict";
import { freePort } from "../_helpers/ports.ts";
import net from "node:net";
import type { AddressInfo } from "node:net";
import {
  header,
  rawBackend,
  request,
  startBackend,
  startTestRouter,
  testPki,
} from "./_helpers.ts";

const ROUTE = "app.example.com";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

Deno.test("router adds forwarding, request-id and (with tracing.enable_w3c) trace headers", async () => {
  const t = await startTestRouter({ tracing: { enable_w3c: true } });
  const be = await startBackend({ name: "A" });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
      app: "app-1",
      private_instance_id: "inst-1",
      private_instance_index: "0",
    });
    const before = Date.now();
    const res = await request(t.url, "App.Example.com:8080", {
      path: "/p?q=1",
      headers: { "x-forwarded-for": "10.1.2.3" },
    });
    assert.equal(res.status, 200);
    const seen = be.seen[0]!;
    assert.equal(seen.url, "/p?q=1");
    assert.equal(seen.headers["host"], "App.Example.com:8080");
    assert.equal(seen.headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert.equal(seen.headers["x-forwarded-proto"], "http");
    const start = Number(seen.headers["x-request-start"]);
    assert.ok(start >= before && start <= Date.now());
    const id = String(seen.headers["x-vcap-request-id"]);
    assert.match(id, UUID);
    assert.equal(header(res, "x-vcap-request-id"), id);
    assert.equal(seen.headers["x-cf-applicationid"], "app-1");
    assert.equal(seen.headers["x-cf-instanceid"], "inst-1");
    assert.equal(seen.headers["x-cf-instanceindex"], "0");
    // A trace is started with the request id as the trace id.
    const tp = String(seen.headers["traceparent"]);
    assert.match(tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(tp.slice(3, 35), id.replaceAll("-", ""));
    assert.equal(seen.headers["tracestate"], `gorouter=${tp.slice(36, 52)}`);

    // An incoming trace is continued with a new parent id.
    const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await request(t.url, ROUTE, { headers: { traceparent: incoming } });
    const tp2 = String(be.seen[1]!.headers["traceparent"]);
    assert.equal(tp2.slice(0, 36), incoming.slice(0, 36));
    assert.notEqual(tp2.slice(36, 52), incoming.slice(36, 52));
    assert.equal(tp2.slice(52), "-01");

    const log = t.access.find((a) => a.request_id === id)!;
    assert.equal(log.host, "app.example.com");
    assert.equal(log.status, 200);
    assert.equal(log.backend, `127.0.0.1:${be.port}`);
    assert.equal(log.instance_id, "inst-1");
    assert.equal(log.app_id, "app-1");
    assert.equal(log.method, "GET");
    assert.equal(log.path, "/p?q=1");
    assert.equal(log.failed_attempts, 0);
    assert.ok(Number(log.bytes_out) > 0);
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router answers unknown routes, empty hosts and oversized headers itself", async () => {
  const t = await startTestRouter({ max_header_kb: 4 });
  try {
    const unknown = await request(t.url, "nope.example.com");
    assert.equal(unknown.status, 404);
    assert.equal(header(unknown, "x-cf-routererror"), "unknown_route");
    assert.match(header(unknown, "x-vcap-request-id"), UUID);

    const big = await request(t.url, "nope.example.com", {
      headers: { "x-big": "a".repeat(5000) },
    });
    assert.equal(big.status, 431);

    // Empty Host header over a raw socket.
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: t.router.port,
    });
    await conn.write(
      new TextEncoder().encode(
        "GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
      ),
    );
    const buf = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
    assert.match(text, /^HTTP\/1\.1 400/);
    assert.match(text, /x-cf-routererror: empty_host/i);
  } finally {
    await t.close();
  }
});

Deno.test("router routes by longest path prefix, case-insensitively", async () => {
  const t = await startTestRouter();
  const root = await startBackend({ name: "root" });
  const api = await startBackend({ name: "api" });
  const v2 = await startBackend({ name: "v2" });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: root.port,
      uris: [ROUTE],
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      port: api.port,
      uris: [`${ROUTE}/API`],
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      port: v2.port,
      uris: [`${ROUTE}/api/v2`],
    });
    const who = async (path: string) =>
      JSON.parse((await request(t.url, ROUTE, { path })).text).backend;
    assert.equal(await who("/"), "root");
    assert.equal(await who("/api"), "api");
    assert.equal(await who("/Api/x"), "api");
    assert.equal(await who("/apix"), "root");
    assert.equal(await who("/api/v2/y"), "v2");
    assert.equal(await who("/api?x=1"), "api");
  } finally {
    await Promise.all([root.close(), api.close(), v2.close()]);
    await t.close();
  }
});

Deno.test("router retries idempotent requests on the next endpoint and never resends a POST", async () => {
  const t = await startTestRouter();
  const dead = freePort();
  const good = await startBackend({ name: "good" });
  // Reads the request, then drops the connection without answering.
  let dropped = 0;
  const dropper = net.createServer((s) => {
    s.once("data", () => {
      dropped++;
      s.destroy();
    });
  });
  await new Promise<void>((r) => dropper.listen(0, "127.0.0.1", r));
  const dropPort = (dropper.address() as AddressInfo).port;
  try {
    // A refused endpoint is retried for any method: no byte was sent.
    t.router.apply("register", {
      host: "127.0.0.1",
      port: dead,
      uris: ["a.example.com"],
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      port: good.port,
      uris: ["a.example.com"],
    });
    for (let i = 0; i < 3; i++) {
      const r = await request(t.url, "a.example.com", {
        method: "POST",
        body: `payload-${i}`,
      });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.text).body, `payload-${i}`);
    }
    // The refused plain endpoint is in its cooldown, not pruned.
    assert.equal(t.router.registry.lookup("a.example.com", "/")?.size, 2);

    t.router.apply("register", {
      host: "127.0.0.1",
      port: dropPort,
      uris: ["b.example.com"],
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      port: good.port,
      uris: ["b.example.com"],
    });
    // POST reached the dropper first: never retried.
    const posted = await request(t.url, "b.example.com", {
      method: "POST",
      body: "once",
    });
    assert.equal(posted.status, 502);
    assert.match(header(posted, "x-cf-routererror"), /^endpoint_failure \(/);
    assert.equal(dropped, 1);
    assert.equal(good.seen.filter((s) => s.body === "once").length, 0);

    // GET without a body is retried after the same failure.
    t.router.apply("register", {
      host: "127.0.0.1",
      port: dropPort,
      uris: ["c.example.com"],
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      port: good.port,
      uris: ["c.example.com"],
    });
    const pool = t.router.registry.lookup("c.example.com", "/")!;
    let ok = 0;
    for (let i = 0; i < 2; i++) {
      const got = await request(t.url, "c.example.com", { path: `/get${i}` });
      if (got.status === 200) ok++;
    }
    assert.equal(ok, 2);
    assert.ok(pool.size === 2);
  } finally {
    await good.close();
    await new Promise((r) => dropper.close(r));
    await t.close();
  }
});

Deno.test("router answers 503 endpoint_failure when every attempt fails, capped by max_attempts", async () => {
  const t = await startTestRouter({ backends: { max_attempts: 2 } });
  try {
    const ports = [freePort(), freePort(), freePort()];
    for (const port of ports) {
      t.router.apply("register", { host: "127.0.0.1", port, uris: [ROUTE] });
    }
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 502);
    assert.equal(
      header(res, "x-cf-routererror"),
      "endpoint_failure (ECONNREFUSED)",
    );
    const log = t.access.at(-1)!;
    assert.equal(log.failed_attempts, 2);
  } finally {
    await t.close();
  }
});

Deno.test("router round-robins, honours least-connection per route, and pins sticky sessions", async () => {
  const t = await startTestRouter();
  const mk = (name: string) =>
    startBackend({
      name,
      handler: (req, res) => {
        if (req.url === "/login") {
          res.setHeader(
            "set-cookie",
            "JSESSIONID=abc; Path=/; Secure; SameSite=Lax",
          );
        }
        res.end(name);
        return true;
      },
    });
  const a = await mk("a");
  const b = await mk("b");
  try {
    for (const [be, id] of [[a, "inst-a"], [b, "inst-b"]] as const) {
      t.router.apply("register", {
        host: "127.0.0.1",
        port: be.port,
        uris: [ROUTE],
        private_instance_id: id,
      });
    }
    const names: string[] = [];
    for (let i = 0; i < 4; i++) names.push((await request(t.url, ROUTE)).text);
    assert.deepEqual(names.slice().sort(), ["a", "a", "b", "b"]);
    assert.notEqual(names[0], names[1]);

    const login = await request(t.url, ROUTE, { path: "/login" });
    const cookies = login.headers["set-cookie"] ?? [];
    const vcap = cookies.find((c) => c.startsWith("__VCAP_ID__="));
    assert.ok(vcap, "router adds __VCAP_ID__");
    const pinned = login.text === "a" ? "inst-a" : "inst-b";
    assert.match(vcap, new RegExp(`^__VCAP_ID__=${pinned}; Path=/; HttpOnly`));
    assert.match(vcap, /Secure/);
    assert.match(vcap, /SameSite=Lax/);
    for (let i = 0; i < 4; i++) {
      const r = await request(t.url, ROUTE, {
        headers: { cookie: `JSESSIONID=abc; __VCAP_ID__=${pinned}` },
      });
      assert.equal(r.text, login.text);
    }
    // Without the app cookie the request is not pinned.
    const spread = new Set<string>();
    for (let i = 0; i < 4; i++) {
      spread.add(
        (await request(t.url, ROUTE, {
          headers: { cookie: `__VCAP_ID__=${pinned}` },
        })).text,
      );
    }
    assert.equal(spread.size, 2);

    // least-connection from the route's options: a busy endpoint is avoided.
    t.router.apply("register", {
      host: "127.0.0.1",
      port: a.port,
      uris: [ROUTE],
      private_instance_id: "inst-a",
      options: { loadbalancing: "least-connection" },
    });
    const pool = t.router.registry.lookup(ROUTE, "/")!;
    assert.equal(pool.balancing, "least-connection");
    const busy = pool.endpoints.find((e) => e.instanceId === "inst-a")!;
    busy.inflight += 5;
    try {
      for (let i = 0; i < 4; i++) {
        assert.equal((await request(t.url, ROUTE)).text, "b");
      }
    } finally {
      busy.inflight -= 5;
    }
  } finally {
    await a.close();
    await b.close();
    await t.close();
  }
});

Deno.test("router answers 503 when every endpoint is at max_conns", async () => {
  const t = await startTestRouter({ backends: { max_conns: 1 } });
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  const slow = await startBackend({
    name: "slow",
    handler: (_req, res) => {
      held.then(() => res.end("late"));
      return true;
    },
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: slow.port,
      uris: [ROUTE],
    });
    const first = request(t.url, ROUTE);
    // Wait until the first request occupies the endpoint.
    const pool = t.router.registry.lookup(ROUTE, "/")!;
    while (pool.endpoints[0]!.inflight === 0) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const second = await request(t.url, ROUTE);
    assert.equal(second.status, 503);
    assert.equal(
      header(second, "x-cf-routererror"),
      "Connection Limit Reached",
    );
    release();
    assert.equal((await first).text, "late");
  } finally {
    release();
    await slow.close();
    await t.close();
  }
});

Deno.test("router streams large request and response bodies", async () => {
  const t = await startTestRouter();
  const big = "x".repeat(3 * 1024 * 1024);
  const be = await startBackend({
    name: "big",
    handler: (_req, res, body) => {
      res.end(body + body);
      return true;
    },
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    const res = await request(t.url, ROUTE, { method: "PUT", body: big });
    assert.equal(res.status, 200);
    assert.equal(res.text.length, big.length * 2);
    const log = t.access.at(-1)!;
    assert.equal(log.bytes_in, big.length);
    assert.equal(log.bytes_out, big.length * 2);
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router serves an HTTPS front listener and forwards X-Forwarded-Proto https", async () => {
  const pki = await testPki();
  const front = await pki.issueClient({
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
  });
  const dir = await Deno.makeTempDir({ prefix: "sigil-router-front-" });
  await Deno.writeTextFile(`${dir}/front.crt`, front.certPem);
  await Deno.writeTextFile(`${dir}/front.key`, front.keyPem, { mode: 0o600 });
  const t = await startTestRouter({
    https: {
      listen: "127.0.0.1:0",
      cert: `${dir}/front.crt`,
      key: `${dir}/front.key`,
    },
  });
  const be = await startBackend({ name: "A" });
  const client = Deno.createHttpClient({ caCerts: [pki.rootPem] });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      // Not an IP: a Host that is the client's address is 400 (gorouter).
      uris: ["localhost"],
    });
    const res = await fetch(`https://localhost:${t.router.httpsPort}/secure`, {
      client,
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).backend, "A");
    assert.equal(be.seen[0]!.headers["x-forwarded-proto"], "https");
    assert.equal(be.seen[0]!.url, "/secure");
  } finally {
    client.close();
    await be.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// handlers/routeservice.go: with route services off, a route that names one
// gets 502 route_service_unsupported; the app is never reached around it.
Deno.test("a route with a route service is never routed around it (502 route_service_unsupported)", async () => {
  const t = await startTestRouter();
  const be = await startBackend({ name: "A" });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
      route_service_url: "https://auth.example.com/check",
    });
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 502);
    assert.equal(header(res, "x-cf-routererror"), "route_service_unsupported");
    assert.match(res.text, /Support for route services is disabled/);
    assert.equal(be.seen.length, 0);
  } finally {
    await be.close();
    await t.close();
  }
});

// proxy_round_tripper.go isIdempotent + proxy_round_tripper_test.go
// "Idempotency-Key header: attempts retry": a bodiless POST that carries the
// header is retried after a reset like a GET; without it, it is not.
Deno.test("a bodiless POST with Idempotency-Key is retried on another endpoint after a reset; without it, it is not", async () => {
  // No cooldown: the resetting backend stays in the rotation.
  const t = await startTestRouter({
    balancing_algorithm: "round-robin",
    backends: { failure_cooldown: "0s" },
  });
  const resetting = await rawBackend((_head, sock) => sock.destroy());
  const good = await startBackend({ name: "good" });
  try {
    for (const port of [resetting.port, good.port]) {
      t.router.apply("register", { host: "127.0.0.1", port, uris: [ROUTE] });
    }
    const statuses = async (headers: Record<string, string>) => {
      const out: number[] = [];
      for (let i = 0; i < 4; i++) {
        out.push(
          (await request(t.url, ROUTE, { method: "POST", headers })).status,
        );
      }
      return out;
    };
    // Every request that met the resetting backend first was retried.
    assert.deepEqual(await statuses({ "idempotency-key": "k-1" }), [
      200,
      200,
      200,
      200,
    ]);
    assert.ok(resetting.heads.length >= 1, "the resetting backend was tried");
    assert.ok(
      good.seen.every((s) => s.headers["idempotency-key"] === "k-1"),
      "the header is forwarded",
    );
    // Without the key, a reset after send is answered (502), not retried.
    const before = resetting.heads.length;
    const plain = await statuses({});
    assert.ok(plain.includes(502), `some POST met the reset: ${plain}`);
    assert.ok(resetting.heads.length > before);
  } finally {
    await resetting.close();
    await good.close();
    await t.close();
  }
});

// proxy_round_tripper.go setRequestXCfInstanceId: without a
// private_instance_id the backend learns its address instead.
Deno.test("X-CF-InstanceID is the endpoint's host:port when it registered no instance id", async () => {
  const t = await startTestRouter();
  const be = await startBackend({ name: "A" });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    assert.equal((await request(t.url, ROUTE)).status, 200);
    assert.equal(
      be.seen[0]!.headers["x-cf-instanceid"],
      `127.0.0.1:${be.port}`,
    );
  } finally {
    await be.close();
    await t.close();
  }
});

// routing-release: tracing is off by default; handlers/w3c.go and
// handlers/zipkin.go run only when enabled; off, the client's headers pass.
Deno.test("tracing: off by default the client's trace headers pass untouched; W3C keeps other vendors' tracestate; Zipkin completes or starts B3", async () => {
  const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const off = await startTestRouter();
  const on = await startTestRouter({
    tracing: { enable_w3c: true, enable_zipkin: true, w3c_tenant_id: "t1" },
  });
  const be = await startBackend({ name: "A" });
  try {
    for (const t of [off, on]) {
      t.router.apply("register", {
        host: "127.0.0.1",
        port: be.port,
        uris: [ROUTE],
      });
    }
    await request(off.url, ROUTE);
    assert.equal(be.seen[0]!.headers["traceparent"], undefined);
    assert.equal(be.seen[0]!.headers["b3"], undefined);
    await request(off.url, ROUTE, {
      headers: { traceparent: incoming, tracestate: "x=1", b3: "bogus" },
    });
    assert.equal(be.seen[1]!.headers["traceparent"], incoming);
    assert.equal(be.seen[1]!.headers["tracestate"], "x=1");
    assert.equal(be.seen[1]!.headers["b3"], "bogus");

    await request(on.url, ROUTE, {
      headers: {
        traceparent: incoming,
        tracestate: "t1@gorouter=0000000000000001,congo=t61rcWkgMzE",
        "x-b3-traceid": "463ac35c9f6413ad48485a3953bb6124",
        "x-b3-spanid": "a2fb4a1d1a96d312",
        "x-b3-sampled": "1",
      },
    });
    const w = be.seen[2]!.headers;
    const tp = String(w["traceparent"]);
    assert.equal(tp.slice(0, 36), incoming.slice(0, 36));
    assert.equal(
      w["tracestate"],
      `t1@gorouter=${tp.slice(36, 52)},congo=t61rcWkgMzE`,
    );
    assert.equal(
      w["b3"],
      "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1",
    );
    assert.equal(w["x-b3-traceid"], "463ac35c9f6413ad48485a3953bb6124");

    await request(on.url, ROUTE);
    const n = be.seen[3]!.headers;
    const id = String(n["x-vcap-request-id"]).replaceAll("-", "");
    assert.equal(n["x-b3-traceid"], id);
    assert.match(String(n["x-b3-spanid"]), /^[0-9a-f]{16}$/);
    assert.equal(n["b3"], `${n["x-b3-traceid"]}-${n["x-b3-spanid"]}`);
    assert.equal(String(n["traceparent"]).slice(3, 35), id);
  } finally {
    await be.close();
    await off.close();
    await on.close();
  }
});

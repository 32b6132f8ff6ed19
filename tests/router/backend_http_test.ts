import assert from "node:assert/strict";
import net from "node:net";
import {
  assertRequestTimedOut,
  countingRelay,
  header,
  instanceBackend,
  rawBackend,
  request,
  startBackend,
  startTestRouter,
} from "./_helpers.ts";

const ROUTE = "be.example.com";

Deno.test("router relays chunked, close-delimited and bodiless responses", async () => {
  const t = await startTestRouter();
  const be = await rawBackend((head, sock) => {
    const path = head.split(" ")[1];
    if (path === "/chunked") {
      sock.write(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\nhello\r\n",
      );
      setTimeout(
        () => sock.write("6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"),
        20,
      );
    } else if (path === "/close") {
      sock.end("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close");
    } else if (path === "/204") {
      sock.write("HTTP/1.1 204 No Content\r\n\r\n");
    } else if (path === "/head") {
      sock.write("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
    } else if (path === "/continue") {
      sock.write(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
      );
    } else {
      sock.write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    }
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    const chunked = await request(t.url, ROUTE, { path: "/chunked" });
    assert.equal(chunked.status, 200);
    assert.equal(chunked.text, "hello world");
    assert.equal(header(chunked, "x-a"), "1");
    // The connection stays usable after a chunked response.
    const after = await request(t.url, ROUTE, { path: "/x" });
    assert.equal(after.text, "abc");
    const close = await request(t.url, ROUTE, { path: "/close" });
    assert.equal(close.text, "until-close");
    const noContent = await request(t.url, ROUTE, { path: "/204" });
    assert.equal(noContent.status, 204);
    const head = await request(t.url, ROUTE, { path: "/head", method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.text, "");
    const cont = await request(t.url, ROUTE, {
      path: "/continue",
      method: "POST",
      body: "x",
    });
    assert.equal(cont.status, 201);
    assert.equal(cont.text, "ok");
    const again = await request(t.url, ROUTE, { path: "/x" });
    assert.equal(again.text, "abc");
    // Hop-by-hop request headers (and those Connection names) are not
    // forwarded; the router speaks keep-alive to the backend on its own.
    await request(t.url, ROUTE, {
      path: "/hop",
      headers: { connection: "x-hop", "x-hop": "secret", te: "trailers" },
    });
    const hop = be.heads.find((h) => h.startsWith("GET /hop "))!;
    assert.doesNotMatch(hop, /^x-hop:/im);
    assert.doesNotMatch(hop, /^te:/im);
    assert.match(hop, /^connection: keep-alive$/im);
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router sends a chunked request body when the client gave no length", async () => {
  const t = await startTestRouter();
  const be = await startBackend({ name: "echo" });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    const res = await new Promise<string>((resolve, reject) => {
      const conn = net.connect(
        { host: "127.0.0.1", port: t.router.port },
        () => {
          conn.write(
            `POST /up HTTP/1.1\r\nHost: ${ROUTE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
              "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
          );
        },
      );
      let out = "";
      conn.on("data", (c) => (out += c.toString()));
      conn.on("end", () => resolve(out));
      conn.on("error", reject);
    });
    assert.match(res, /^HTTP\/1\.1 200/);
    assert.equal(be.seen[0]!.body, "abcdefg");
    assert.equal(be.seen[0]!.headers["transfer-encoding"], "chunked");
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router answers 502 when a backend dies in the middle of a small response", async () => {
  const t = await startTestRouter();
  const be = await rawBackend((_head, sock) => {
    sock.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    setTimeout(() => sock.destroy(), 10);
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 502);
    assert.match(header(res, "x-cf-routererror"), /^endpoint_failure/);
    assert.doesNotMatch(res.text, /partial/);
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router strips header-breaking characters from registered values", async () => {
  const t = await startTestRouter();
  const be = await startBackend({ name: "echo" });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
      app: "app\r\nx-injected: yes",
      private_instance_id: "inst;1",
    });
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 200);
    assert.equal(be.seen[0]!.headers["x-injected"], undefined);
    assert.equal(
      be.seen[0]!.headers["x-cf-applicationid"],
      "appx-injected: yes",
    );
    assert.equal(be.seen[0]!.headers["x-cf-instanceid"], "inst1");
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router times out a backend that never answers (request_timeout)", async () => {
  const t = await startTestRouter({ request_timeout: "300ms" });
  const be = await rawBackend();
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    const res = await request(t.url, ROUTE, { method: "POST", body: "x" });
    assertRequestTimedOut(res);
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router closes idle backend connections after idle_timeout and honours max_idle_conns", async () => {
  const be = await rawBackend((_head, sock) => {
    sock.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  });
  const watch = await countingRelay(be.port);
  const { port, counts } = watch;
  const t = await startTestRouter({ backends: { idle_timeout: "300ms" } });
  const noIdle = await startTestRouter({ backends: { max_idle_conns: 0 } });
  try {
    t.router.apply("register", { host: "127.0.0.1", port, uris: [ROUTE] });
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    assert.equal(counts.opened, 1, "keep-alive reuses the connection");
    const deadline = Date.now() + 3000;
    while (counts.open > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(counts.open, 0, "idle connection closed");

    noIdle.router.apply("register", { host: "127.0.0.1", port, uris: [ROUTE] });
    counts.opened = 0;
    for (let i = 0; i < 3; i++) {
      assert.equal((await request(noIdle.url, ROUTE)).text, "ok");
    }
    assert.equal(counts.opened, 3, "no keep-alive with max_idle_conns: 0");
  } finally {
    await t.close();
    await noIdle.close();
    await watch.close();
    await be.close();
  }
});

Deno.test("router keeps a POST body intact for the next endpoint when a handshake fails", async () => {
  const t = await startTestRouter();
  const y = await instanceBackend(t, "Y", "inst-y");
  const z = await instanceBackend(t, "Z", "inst-z");
  try {
    // Registered as inst-x but serving inst-y: tried first, fails its check.
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: y.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-x",
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: z.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-z",
    });
    const body = "b".repeat(200_000);
    const res = await request(t.url, ROUTE, { method: "POST", body });
    assert.equal(res.status, 200);
    const echoed = JSON.parse(res.text);
    assert.equal(echoed.backend, "Z");
    assert.equal(echoed.body.length, body.length);
    assert.equal(y.seen.length, 0);
    assert.equal(t.access.at(-1)!.failed_attempts, 1);
  } finally {
    await y.close();
    await z.close();
    await t.close();
  }
});

Deno.test("router gives up on a TLS handshake after tls_handshake_timeout and prunes the endpoint", async () => {
  const t = await startTestRouter({
    backends: { tls_handshake_timeout: "200ms" },
  });
  // Accepts TCP, never answers the ClientHello.
  const be = await rawBackend();
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: be.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-silent",
    });
    const started = Date.now();
    const res = await request(t.url, ROUTE);
    assert.ok(Date.now() - started < 3000);
    assert.equal(res.status, 525);
    assert.equal(
      header(res, "x-cf-routererror"),
      "endpoint_failure (ERR_ROUTER_HANDSHAKE_TIMEOUT)",
    );
    assert.equal(t.router.registry.endpointCount, 0);
    assert.match(
      t.router.metrics(),
      /sigil_router_backend_tls_handshake_failed_total 1/,
    );
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router streams a chunked response of unknown length to the client", async () => {
  const t = await startTestRouter();
  const part = "z".repeat(100_000);
  const be = await startBackend({
    name: "stream",
    handler: (_req, res) => {
      res.write(part);
      setTimeout(() => res.end(part), 20);
      return true;
    },
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 200);
    assert.equal(res.text.length, part.length * 2);
    assert.equal(t.access.at(-1)!.bytes_out, part.length * 2);
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router answers 502 to a backend status fetch cannot carry, and keeps serving", async () => {
  const t = await startTestRouter();
  const be = await rawBackend((head, sock) => {
    if (head.startsWith("GET /odd ")) {
      sock.write("HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nhi");
    } else if (head.startsWith("GET /odd-big ")) {
      sock.write(
        `HTTP/1.1 999 Odd\r\nContent-Length: 200000\r\n\r\n${
          "y".repeat(200000)
        }`,
      );
    } else sock.write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE],
    });
    for (const path of ["/odd", "/odd-big"]) {
      const odd = await request(t.url, ROUTE, { path });
      assert.equal(odd.status, 502, path);
      assert.match(header(odd, "x-cf-routererror") ?? "", /endpoint_failure/);
      assert.doesNotMatch(odd.text, /hi|yyy/);
    }
    const ok = await request(t.url, ROUTE, { path: "/fine" });
    assert.equal(ok.status, 200);
    assert.equal(ok.text, "abc");
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router drain(): a request cut at the drain timeout is not retried elsewhere and does not cool its endpoint", async () => {
  const t = await startTestRouter();
  const hang = await startBackend({ name: "hang", handler: () => true });
  const other = await startBackend({ name: "other" });
  try {
    for (const be of [hang, other]) {
      t.router.apply("register", {
        host: "127.0.0.1",
        port: be.port,
        uris: [ROUTE],
      });
    }
    // Round-robin: the first request goes to "hang" and never gets an answer.
    const stuck = request(t.url, ROUTE).catch((err) => err as Error);
    while (hang.seen.length === 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await t.router.drain(200, 0);
    const res = await stuck;
    if (!(res instanceof Error)) assert.ok(res.status >= 500, `${res.status}`);
    assert.equal(other.seen.length, 0, "not retried on another endpoint");
    const pool = t.router.registry.lookup(ROUTE, "/");
    assert.ok(pool?.endpoints.every((e) => e.failedUntil === 0));
  } finally {
    await hang.close();
    await other.close();
    await t.close();
  }
});

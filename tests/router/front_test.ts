// The router's client front (lib/router/_front.ts) over real sockets:
// read_header_timeout and idle_timeout (gorouter's ReadHeaderTimeout /
// IdleTimeout, Go net/http server.go), max_connections, and the 431 for
// heads the HTTP engine would answer with a bare 400. Deadlines run on the
// router's injected clock, so no test waits for them in real time.
import assert from "node:assert/strict";
import { startBackend, startTestRouter, testPki } from "./_helpers.ts";
import type { TestRouter } from "./_helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads until EOF or a reset; what was read. Bounded by `ms` real time. */
async function readToEnd(conn: Deno.Conn, ms = 20_000): Promise<string> {
  let text = "";
  const buf = new Uint8Array(65536);
  const deadline = Date.now() + ms;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"timeout">((
        r,
      ) => (timer = setTimeout(() => r("timeout"), deadline - Date.now()))),
    ]);
    clearTimeout(timer);
    if (n === "timeout") {
      throw new Error(`connection still open after ${ms} ms: ${text}`);
    }
    if (n === null) return text;
    text += dec.decode(buf.subarray(0, n));
  }
}

/** Reads one response (headers and a Content-Length body). */
async function readResponse(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(65536);
  for (let i = 0; i < 1000; i++) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += dec.decode(buf.subarray(0, n));
    const end = text.indexOf("\r\n\r\n");
    const len = Number(text.match(/content-length: (\d+)/i)?.[1] ?? NaN);
    if (end >= 0 && text.length >= end + 4 + len) break;
  }
  return text;
}

function metric(t: TestRouter, line: string): number {
  const m = t.router.metrics().split("\n").find((l) =>
    l.startsWith(`${line} `)
  );
  return Number(m?.split(" ")[1] ?? NaN);
}

function connect(t: TestRouter): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port: t.router.port });
}

function route(t: TestRouter, port: number): void {
  t.router.apply("register", {
    host: "127.0.0.1",
    port,
    uris: ["app.example.com"],
  });
}

const TIMED_OUT = "sigil_router_client_connections_timed_out_total";

Deno.test("front: a client sending one header line every 3 s is cut after read_header_timeout (10 s)", async () => {
  const t = await startTestRouter({}, { fakeClock: true });
  const clock = t.clock!;
  const conn = await connect(t);
  try {
    await conn.write(
      enc.encode("GET / HTTP/1.1\r\nHost: slow.example.com\r\n"),
    );
    for (let i = 0; i < 3; i++) {
      await clock.tick(3000);
      await conn.write(enc.encode(`X-Slow-${i}: a\r\n`));
    }
    // 9 s in: still open.
    assert.equal(metric(t, `${TIMED_OUT}{reason="read_header"}`), 0);
    await clock.tick(1500);
    assert.equal(await readToEnd(conn), "");
    assert.equal(metric(t, `${TIMED_OUT}{reason="read_header"}`), 1);
  } finally {
    conn.close();
    await t.close();
  }
});

Deno.test("front: a TLS client that never finishes its handshake is cut after read_header_timeout", async () => {
  const pki = await testPki();
  const front = await pki.issueClient({
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
  });
  const dir = await Deno.makeTempDir({ prefix: "sigil-front-" });
  await Deno.writeTextFile(`${dir}/front.crt`, front.certPem);
  await Deno.writeTextFile(`${dir}/front.key`, front.keyPem, { mode: 0o600 });
  const t = await startTestRouter({
    read_header_timeout: "5s",
    https: {
      listen: "127.0.0.1:0",
      cert: `${dir}/front.crt`,
      key: `${dir}/front.key`,
    },
  }, { fakeClock: true });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: t.router.httpsPort!,
  });
  try {
    await conn.write(new Uint8Array([0x16, 0x03, 0x01])); // a ClientHello's first bytes
    await t.clock!.tick(6000);
    assert.equal(await readToEnd(conn), "");
    assert.equal(metric(t, `${TIMED_OUT}{reason="read_header"}`), 1);
  } finally {
    conn.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("front: an idle keep-alive connection is closed after idle_timeout, a busy one is not", async () => {
  const t = await startTestRouter({ idle_timeout: "30s" }, { fakeClock: true });
  const clock = t.clock!;
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const be = await startBackend({
    name: "A",
    handler: (req, res) => {
      if (req.url !== "/slow") return false;
      held.then(() => res.end("done"));
      return true;
    },
  });
  const idle = await connect(t);
  const busy = await connect(t);
  try {
    route(t, be.port);
    await idle.write(
      enc.encode("GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n"),
    );
    assert.match(await readResponse(idle), /^HTTP\/1\.1 200/);
    await busy.write(
      enc.encode("GET /slow HTTP/1.1\r\nHost: app.example.com\r\n\r\n"),
    );
    // Wait (real time) until the slow request reached the backend.
    for (let i = 0; i < 200 && be.seen.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(be.seen.length, 2);
    await clock.tick(20_000);
    assert.equal(metric(t, `${TIMED_OUT}{reason="idle"}`), 0);
    await clock.tick(11_000);
    assert.equal(await readToEnd(idle), "");
    assert.equal(metric(t, `${TIMED_OUT}{reason="idle"}`), 1);
    // The connection with a request in flight outlives idle_timeout.
    release();
    assert.match(await readResponse(busy), /^HTTP\/1\.1 200[\s\S]*done$/);
  } finally {
    release();
    idle.close();
    busy.close();
    await be.close();
    await t.close();
  }
});

Deno.test("front: connections over max_connections are refused and counted", async () => {
  const t = await startTestRouter({ max_connections: 2 });
  const open: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      open.push(
        await Deno.connect({ hostname: "127.0.0.1", port: t.router.port }),
      );
    }
    for (
      let i = 0;
      i < 200 && metric(t, "sigil_router_client_connections") < 2;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(metric(t, "sigil_router_client_connections"), 2);
    const third = await connect(t);
    try {
      await third.write(
        enc.encode("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"),
      ).catch(() => {});
      assert.equal(await readToEnd(third), "");
    } finally {
      third.close();
    }
    assert.equal(metric(t, "sigil_router_client_connections_refused_total"), 1);
    // Below the cap again, a new connection is served.
    open.pop()!.close();
    for (
      let i = 0;
      i < 200 && metric(t, "sigil_router_client_connections") > 1;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const fourth = await connect(t);
    try {
      await fourth.write(
        enc.encode(
          "GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n",
        ),
      );
      assert.match(await readToEnd(fourth), /^HTTP\/1\.1 404/);
    } finally {
      fourth.close();
    }
  } finally {
    for (const c of open) c.close();
    await t.close();
  }
});

for (
  const [what, head] of [
    [
      "a 61 KiB header over max_header_kb (60)",
      `X-Big: ${"a".repeat(61 * 1024)}\r\n`,
    ],
    [
      "101 header fields",
      Array.from({ length: 101 }, (_, i) => `X-F${i}: v\r\n`).join(""),
    ],
  ] as const
) {
  Deno.test(`front: a head with ${what} answers 431, not the engine's bare 400 (raw TCP)`, async () => {
    const t = await startTestRouter();
    const conn = await connect(t);
    try {
      await conn.write(
        enc.encode(`GET / HTTP/1.1\r\nHost: a.example.com\r\n${head}\r\n`),
      ).catch(() => {});
      const text = await readToEnd(conn);
      assert.match(text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
      assert.equal(
        metric(t, "sigil_router_request_headers_too_large_total"),
        1,
      );
    } finally {
      conn.close();
      await t.close();
    }
  });
}

Deno.test("front: a head within the limits, sent in pieces after a keep-alive request, is served", async () => {
  const t = await startTestRouter();
  const be = await startBackend({ name: "A" });
  const conn = await connect(t);
  try {
    route(t, be.port);
    // 90 fields, under the test backend's own 16 KiB head limit (node:http).
    const fields = Array.from(
      { length: 90 },
      (_, i) => `X-F${i}: ${"v".repeat(100)}\r\n`,
    ).join("");
    for (let round = 0; round < 2; round++) {
      const req =
        `GET /r${round} HTTP/1.1\r\nHost: app.example.com\r\n${fields}\r\n`;
      for (let i = 0; i < req.length; i += 1000) {
        await conn.write(enc.encode(req.slice(i, i + 1000)));
      }
      assert.match(await readResponse(conn), /^HTTP\/1\.1 200/);
    }
    assert.equal(be.seen.length, 2);
    assert.equal(metric(t, "sigil_router_request_headers_too_large_total"), 0);
  } finally {
    conn.close();
    await be.close();
    await t.close();
  }
});

import assert from "node:assert/strict";
import https from "node:https";
import net from "node:net";
import { WebSocketServer } from "ws";
import { startTestRouter, testPki } from "./_helpers.ts";
import type { TestCredential } from "../_helpers/pki.ts";

/** Opens a connection to `port` and sends a WebSocket upgrade for `/ws`. */
async function sendUpgrade(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(
      "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n" +
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ),
  );
  return conn;
}

/** A Deno.serve backend on 127.0.0.1, over TLS with `cred` when given. */
function serveBackend(
  handler: (req: Request) => Response,
  cred?: TestCredential,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}),
  }, handler) as Deno.HttpServer<Deno.NetAddr>;
}

Deno.test("router passes WebSocket upgrades through to a verified TLS backend", async () => {
  const t = await startTestRouter();
  const cred = await t.pki.issueInstance({ instanceId: "inst-ws" });
  const seenInstance: string[] = [];
  const backend = serveBackend((req) => {
    seenInstance.push(req.headers.get("x-cf-instanceid") ?? "");
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => {
      if (e.data === "close-please") socket.close(4001, "bye");
      else if (typeof e.data === "string") socket.send(`echo:${e.data}`);
      else socket.send(new Uint8Array([...new Uint8Array(e.data), 255]));
    };
    return response;
  }, cred);
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: backend.addr.port,
      uris: ["localhost"],
      server_cert_domain_san: "inst-ws",
      private_instance_id: "inst-ws",
    });
    const ws = new WebSocket(`ws://localhost:${t.router.port}/chat`);
    ws.binaryType = "arraybuffer";
    const messages: unknown[] = [];
    const closed = Promise.withResolvers<CloseEvent>();
    const got = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () =>
          messages.length >= n ? resolve() : setTimeout(check, 5);
        check();
      });
    ws.onmessage = (e) => messages.push(e.data);
    ws.onclose = (e) => closed.resolve(e);
    await new Promise((r) => (ws.onopen = r));
    ws.send("hello");
    ws.send("x".repeat(70_000));
    ws.send(new Uint8Array([1, 2, 3]));
    await got(3);
    assert.equal(messages[0], "echo:hello");
    assert.equal(messages[1], `echo:${"x".repeat(70_000)}`);
    assert.deepEqual([...new Uint8Array(messages[2] as ArrayBuffer)], [
      1,
      2,
      3,
      255,
    ]);
    ws.send("close-please");
    const ev = await closed.promise;
    assert.equal(ev.code, 4001);
    assert.equal(seenInstance[0], "inst-ws");
    assert.match(t.router.metrics(), /websocket_upgrades_total 1/);
  } finally {
    await t.close();
    await backend.shutdown();
  }
});

Deno.test("router refuses a WebSocket upgrade to an endpoint with the wrong identity", async () => {
  const t = await startTestRouter();
  const cred = await t.pki.issueInstance({ instanceId: "inst-y" });
  let hits = 0;
  const backend = serveBackend((req) => {
    hits++;
    return Deno.upgradeWebSocket(req).response;
  }, cred);
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: backend.addr.port,
      uris: ["localhost"],
      server_cert_domain_san: "inst-x",
    });
    const ws = new WebSocket(`ws://localhost:${t.router.port}/`);
    const err = await new Promise<string>((resolve) => {
      ws.onerror = () => resolve("error");
      ws.onopen = () => resolve("open");
    });
    assert.equal(err, "error");
    assert.equal(hits, 0);
    assert.equal(t.router.registry.endpointCount, 0);
  } finally {
    await t.close();
    await backend.shutdown();
  }
});

Deno.test("router close() ends open WebSocket relays", async () => {
  const t = await startTestRouter();
  const backend = serveBackend((req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: backend.addr.port,
      uris: ["localhost"],
    });
    const ws = new WebSocket(`ws://localhost:${t.router.port}/`);
    const closed = Promise.withResolvers<CloseEvent>();
    ws.onclose = (e) => closed.resolve(e);
    await new Promise((r) => (ws.onopen = r));
    const echoed = new Promise((r) => (ws.onmessage = (e) => r(e.data)));
    ws.send("ping");
    assert.equal(await echoed, "ping");
    const started = performance.now();
    await t.router.close();
    const ev = await closed.promise;
    assert.ok(performance.now() - started < 5000);
    assert.ok(ev.code === 1001 || ev.code === 1006 || ev.code === 1000);
  } finally {
    await t.close();
    await backend.shutdown();
  }
});

Deno.test("router relays a client-initiated close to the backend and retries past a bad identity", async () => {
  const t = await startTestRouter();
  const bad = await t.pki.issueInstance({ instanceId: "inst-other" });
  const good = await t.pki.issueInstance({ instanceId: "inst-good" });
  let badHits = 0;
  const badBackend = serveBackend((req) => {
    badHits++;
    return Deno.upgradeWebSocket(req).response;
  }, bad);
  const backendClosed = Promise.withResolvers<CloseEvent>();
  const goodBackend = serveBackend((req) => {
    const { socket, response } = Deno.upgradeWebSocket(req, {
      protocol: "chat.v1",
    });
    socket.onmessage = (e) => socket.send(`echo:${e.data}`);
    socket.onclose = (e) => backendClosed.resolve(e);
    return response;
  }, good);
  try {
    // The impostor first, so round-robin tries it first.
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: badBackend.addr.port,
      uris: ["localhost"],
      server_cert_domain_san: "inst-bad",
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: goodBackend.addr.port,
      uris: ["localhost"],
      server_cert_domain_san: "inst-good",
    });
    const ws = new WebSocket(`ws://localhost:${t.router.port}/room`, [
      "chat.v1",
    ]);
    const clientClosed = Promise.withResolvers<CloseEvent>();
    ws.onclose = (e) => clientClosed.resolve(e);
    await new Promise((r) => (ws.onopen = r));
    assert.equal(ws.protocol, "chat.v1");
    const echoed = new Promise((r) => (ws.onmessage = (e) => r(e.data)));
    ws.send("hi");
    assert.equal(await echoed, "echo:hi");
    ws.close(4002, "client done");
    const seen = await backendClosed.promise;
    assert.equal(seen.code, 4002);
    assert.equal(seen.reason, "client done");
    await clientClosed.promise;
    assert.equal(badHits, 0);
    const pool = t.router.registry.lookup("localhost", "/")!;
    assert.deepEqual(pool.endpoints.map((e) => e.san), ["inst-good"]);
    const log = t.access.at(-1)!;
    assert.equal(log.status, 101);
    assert.equal(log.failed_attempts, 1);
  } finally {
    await t.close();
    await badBackend.shutdown();
    await goodBackend.shutdown();
  }
});

Deno.test("router passes a backend's refusal of a WebSocket upgrade through", async () => {
  const t = await startTestRouter();
  const backend = serveBackend(() =>
    new Response("no sockets here", { status: 403 })
  );
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: backend.addr.port,
      uris: ["localhost"],
    });
    const conn = await sendUpgrade(t.router.port);
    const buf = new Uint8Array(4096);
    let text = "";
    while (!text.includes("no sockets here")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
    assert.match(text, /^HTTP\/1\.1 403/);
    assert.match(text, /no sockets here/);
    assert.equal(t.access.at(-1)!.status, 403);
  } finally {
    await t.close();
    await backend.shutdown();
  }
});

Deno.test("router presents its client certificate to a WebSocket backend in mtls mode", async () => {
  const pki = await testPki();
  const client = await pki.issueClient({ dnsNames: ["router.sigil.internal"] });
  const t = await startTestRouter({ backends: { mode: "mtls" } }, {
    clientCred: client,
  });
  const cred = await pki.issueInstance({ instanceId: "inst-m" });
  const server = https.createServer({
    cert: cred.certPem,
    key: cred.keyPem,
    requestCert: true,
    rejectUnauthorized: true,
    ca: pki.rootPem + pki.intermediatePem,
  });
  const peers: string[] = [];
  const wss = new WebSocketServer({ server });
  wss.on(
    "connection",
    (
      sock: {
        on(e: string, f: (d: unknown) => void): void;
        send(d: string): void;
      },
      req: { socket: { getPeerCertificate(): { subject?: { CN?: string } } } },
    ) => {
      peers.push(req.socket.getPeerCertificate().subject?.CN ?? "");
      sock.on("message", (d) => sock.send(`mtls:${d}`));
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: port,
      uris: ["localhost"],
      server_cert_domain_san: "inst-m",
    });
    const ws = new WebSocket(`ws://localhost:${t.router.port}/`);
    const closed = new Promise((r) => (ws.onclose = r));
    await new Promise((r) => (ws.onopen = r));
    const echoed = new Promise((r) => (ws.onmessage = (e) => r(e.data)));
    ws.send("x");
    assert.equal(await echoed, "mtls:x");
    assert.equal(peers.length, 1);
    ws.close();
    await closed;
  } finally {
    await t.close();
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

Deno.test("router answers instead of hanging when a backend resets during its refusal of an upgrade", async () => {
  const t = await startTestRouter();
  // Promises a 100-byte refusal body, sends 3 bytes, then resets.
  const raw = net.createServer((s) => {
    s.once("data", () => {
      s.write("HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nabc");
      setTimeout(() => s.resetAndDestroy(), 20);
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => raw.listen(0, "127.0.0.1", r));
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: (raw.address() as net.AddressInfo).port,
      uris: ["localhost"],
    });
    const conn = await sendUpgrade(t.router.port);
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    conn.close();
    const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    assert.match(head, /^HTTP\/1\.1 5\d\d /);
    assert.match(head, /x-cf-routererror: endpoint_failure/i);
  } finally {
    await t.close();
    await new Promise((r) => raw.close(r));
  }
});

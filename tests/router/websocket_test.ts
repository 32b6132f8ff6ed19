import assert from "node:assert/strict";
import { encodeFrame, FrameParser } from "../../lib/router/_ws_frames.ts";
import { startTestRouter } from "./_helpers.ts";

Deno.test("router passes WebSocket upgrades through to a verified TLS backend", async () => {
  const t = await startTestRouter();
  const cred = await t.pki.issueInstance({ instanceId: "inst-ws" });
  const seenInstance: string[] = [];
  const backend = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: cred.certPem,
    key: cred.keyPem,
    onListen: () => {},
  }, (req) => {
    seenInstance.push(req.headers.get("x-cf-instanceid") ?? "");
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => {
      if (e.data === "close-please") socket.close(4001, "bye");
      else if (typeof e.data === "string") socket.send(`echo:${e.data}`);
      else socket.send(new Uint8Array([...new Uint8Array(e.data), 255]));
    };
    return response;
  });
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
  const backend = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: cred.certPem,
    key: cred.keyPem,
    onListen: () => {},
  }, (req) => {
    hits++;
    return Deno.upgradeWebSocket(req).response;
  });
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

Deno.test("WebSocket frame codec round-trips fragmented and large frames", () => {
  const out: Array<[number, string]> = [];
  const p = new FrameParser((op, payload) =>
    out.push([op, new TextDecoder().decode(payload)])
  );
  const big = "y".repeat(70_000);
  const frames = [
    serverFrame(1, "a", false),
    serverFrame(0, "b", true),
    encodeFrame(1, new TextEncoder().encode(big)),
  ];
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let off = 0;
  for (const f of frames) {
    all.set(f, off);
    off += f.length;
  }
  // Feed in odd-sized pieces.
  for (let i = 0; i < all.length; i += 7) p.push(all.slice(i, i + 7));
  assert.deepEqual(out, [[1, "ab"], [1, big]]);
});

/** An unmasked server frame with payload under 126 bytes. */
function serverFrame(opcode: number, text: string, fin: boolean): Uint8Array {
  const payload = new TextEncoder().encode(text);
  return new Uint8Array([
    (fin ? 0x80 : 0) | opcode,
    payload.length,
    ...payload,
  ]);
}

Deno.test("router close() ends open WebSocket relays", async () => {
  const t = await startTestRouter();
  const backend = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(e.data);
      return response;
    },
  );
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

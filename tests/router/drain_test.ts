/**
 * The router's drain in gorouter's order (router/router.go `Drain`, and
 * routing-release's "Configure Load Balancer healthchecks for Gorouter"):
 * `/healthz` fails first while the router keeps accepting and serving for
 * `drain_wait`, with `Connection: close` on every response; then it stops
 * accepting and lets the requests in flight finish. Real sockets, the
 * router's clock is a fake one so the wait ends when the test says so.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { startBackend, startTestRouter } from "./_helpers.ts";
import type { TestRouter } from "./_helpers.ts";

const ROUTE_HOST = "drain.example.com";

interface Answer {
  status: number;
  connection: string | undefined;
  reused: boolean;
  text: string;
}

/** GET / with Host through `agent` (keep-alive), noting whether the socket was reused. */
function get(t: TestRouter, agent: http.Agent, path = "/"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port: t.router.port,
      path,
      headers: { host: ROUTE_HOST },
      agent,
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          connection: res.headers.connection,
          reused: req.reusedSocket,
          text,
        }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

async function refused(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return false;
  } catch (err) {
    if (err instanceof Deno.errors.ConnectionRefused) return true;
    throw err;
  }
}

Deno.test("router drain (gorouter Drain order): /healthz 503 while requests still answer 200 with Connection: close for drain_wait, then new connections are refused and the request in flight finishes", async () => {
  const t = await startTestRouter({ drain_wait: "20s" }, { fakeClock: true });
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const be = await startBackend({
    name: "be",
    handler: (req, res) => {
      if (req.url !== "/slow") return false;
      held.then(() => res.end("slow done"));
      return true;
    },
  });
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const other = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: [ROUTE_HOST],
    });
    const first = await get(t, keepAlive);
    assert.equal(first.status, 200);
    assert.notEqual(first.connection, "close", "keep-alive before the drain");
    const healthy = await fetch(`${t.apiUrl}/healthz`);
    assert.equal(await healthy.text(), "ok\n");

    const slow = get(t, other, "/slow");
    while (!be.seen.some((s) => s.url === "/slow")) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const drained = t.router.drain(60_000);

    // The drain wait: the LB sees 503, clients are still served.
    const draining = await fetch(`${t.apiUrl}/healthz`);
    assert.equal(draining.status, 503);
    assert.equal(await draining.text(), "draining\n");
    const onIdle = await get(t, keepAlive);
    assert.equal(
      onIdle.status,
      200,
      "the idle keep-alive connection is served",
    );
    assert.ok(onIdle.reused, "on the connection opened before the drain");
    assert.equal(onIdle.connection, "close");
    const fresh = await get(t, new http.Agent({ keepAlive: true }));
    assert.equal(fresh.status, 200, "new connections are still accepted");
    assert.equal(fresh.connection, "close");
    assert.ok(!t.logs.some((l) => l.event === "router-stopped-accepting"));

    // drain_wait over: no new connections; the request in flight goes on.
    await t.clock!.tick(20_000);
    for (let i = 0; i < 500 && !(await refused(t.router.port)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(await refused(t.router.port), "listener closed after drain_wait");
    assert.ok(t.logs.some((l) => l.event === "router-stopped-accepting"));
    const stillDraining = await fetch(`${t.apiUrl}/healthz`);
    assert.equal(stillDraining.status, 503);
    await stillDraining.body?.cancel();
    release();
    const done = await slow;
    assert.equal(done.status, 200);
    assert.equal(done.text, "slow done");
    await drained;
  } finally {
    release();
    keepAlive.destroy();
    other.destroy();
    await be.close();
    await t.close();
  }
});

Deno.test("router close() during drain_wait ends the wait at once", async () => {
  const t = await startTestRouter({ drain_wait: "1h" }, { fakeClock: true });
  try {
    const drained = t.router.drain(1_000);
    const health = await fetch(`${t.apiUrl}/healthz`);
    assert.equal(health.status, 503);
    await health.body?.cancel();
    await t.router.close();
    await drained;
    assert.ok(await refused(t.router.port));
  } finally {
    await t.close();
  }
});

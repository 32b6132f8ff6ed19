import assert from "node:assert/strict";
import { instanceBackend, startBackend, startTestRouter } from "./_helpers.ts";
import type { RouteBusLike } from "../../lib/router/mod.ts";
import type { NatsRouteBusOptions } from "../../lib/routes/mod.ts";

Deno.test("router prunes plain endpoints at their stale threshold and keeps TLS ones", async () => {
  const t = await startTestRouter({}, { fakeClock: true });
  const clock = t.clock!;
  const cred = await t.pki.issueInstance({ instanceId: "inst-t" });
  const tlsBackend = await startBackend({ name: "T", cred });
  try {
    t.router.apply("register", {
      host: "10.0.0.1",
      port: 8080,
      uris: ["plain.example.com"],
    });
    t.router.apply("register", {
      host: "10.0.0.2",
      port: 8080,
      uris: ["short.example.com"],
      stale_threshold_in_seconds: 40,
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: tlsBackend.port,
      uris: ["tls.example.com"],
      server_cert_domain_san: "inst-t",
    });
    const has = (h: string) => t.router.registry.lookup(h, "/") !== undefined;

    await clock.tick(30_000); // prune at 30 s: nothing stale yet
    assert.ok(has("plain.example.com") && has("short.example.com"));
    await clock.tick(30_000); // 60 s: past the message's 40 s threshold
    assert.ok(has("plain.example.com"));
    assert.ok(!has("short.example.com"));

    // A refresh keeps the plain endpoint alive.
    await clock.tick(30_000); // 90 s
    t.router.apply("register", {
      host: "10.0.0.1",
      port: 8080,
      uris: ["plain.example.com"],
    });
    await clock.tick(90_000); // 180 s: 90 s since refresh
    assert.ok(has("plain.example.com"));
    await clock.tick(60_000); // 240 s: 150 s since refresh
    assert.ok(!has("plain.example.com"));

    // The TLS endpoint is far past its threshold but passes its probe.
    await t.router.pruneNow();
    assert.ok(has("tls.example.com"));
    assert.match(t.router.metrics(), /routes_pruned_total\{reason="stale"\} 2/);
  } finally {
    await tlsBackend.close();
    await t.close();
  }
});

Deno.test("router probes stale TLS endpoints and prunes those that fail the handshake", async () => {
  const t = await startTestRouter({}, { fakeClock: true });
  const clock = t.clock!;
  const alive = await instanceBackend(t, "alive", "inst-alive");
  const dead = await instanceBackend(t, "dead", "inst-dead");
  const impostor = await instanceBackend(t, "impostor", "inst-other");
  try {
    for (
      const [be, id] of [[alive, "inst-alive"], [dead, "inst-dead"], [
        impostor,
        "inst-gone",
      ]] as const
    ) {
      t.router.apply("register", {
        host: "127.0.0.1",
        tls_port: be.port,
        uris: ["tls.example.com"],
        server_cert_domain_san: id,
      });
    }
    await dead.close();
    // Fresh endpoints are not probed.
    await t.router.pruneNow();
    assert.equal(t.router.registry.endpointCount, 3);
    await clock.tick(150_000);
    await t.router.pruneNow();
    const left = t.router.registry.lookup("tls.example.com", "/")!.endpoints
      .map((e) => e.san);
    assert.deepEqual(left, ["inst-alive"]);
    assert.match(t.router.metrics(), /routes_pruned_total\{reason="probe"\} 2/);
    assert.equal(impostor.seen.length, 0);
  } finally {
    await alive.close();
    await impostor.close();
    await t.close();
  }
});

Deno.test("router suspends pruning while NATS is unavailable and refreshes on reconnect", async () => {
  let status: ((up: boolean) => void) | undefined;
  const fakeBus: RouteBusLike & { connected: boolean } = {
    connected: true,
    close: () => Promise.resolve(),
  };
  const t = await startTestRouter(
    { nats: { servers: ["nats://127.0.0.1:1"] } },
    {
      fakeClock: true,
      deps: {
        connectNats: (o: NatsRouteBusOptions) => {
          status = o.onStatus;
          o.onStatus?.(true);
          return Promise.resolve(fakeBus);
        },
      },
    },
  );
  const clock = t.clock!;
  try {
    t.router.apply("register", {
      host: "10.0.0.1",
      port: 8080,
      uris: ["plain.example.com"],
    });
    status!(false);
    await clock.tick(300_000);
    assert.equal(t.router.registry.endpointCount, 1, "kept while NATS is down");
    assert.ok(t.logs.some((l) => l.event === "prune-suspended"));
    status!(true); // reconnect refreshes every endpoint
    await clock.tick(90_000);
    assert.equal(t.router.registry.endpointCount, 1);
    await clock.tick(60_000);
    assert.equal(t.router.registry.endpointCount, 0);
  } finally {
    await t.close();
  }
});

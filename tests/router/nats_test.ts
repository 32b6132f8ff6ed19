import assert from "node:assert/strict";
import { NatsRouteBus } from "../../lib/routes/mod.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import { startNatsServer } from "../_helpers/nats.ts";
import { request, startBackend, startTestRouter } from "./_helpers.ts";

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("Condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("registrations published on NATS reach two routers, which route them", async () => {
  await using nats = await startNatsServer();
  const nc = { servers: [nats.url] };
  const r1 = await startTestRouter({ nats: nc, id: "router-1" });
  const r2 = await startTestRouter({ nats: nc, id: "router-2" });
  const cred = await r1.pki.issueInstance({ instanceId: "inst-n" });
  const backend = await startBackend({ name: "N", cred });
  const proxy = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: silentLogger,
  });
  try {
    const msg = {
      host: "127.0.0.1",
      tls_port: backend.port,
      uris: ["nats.example.com"],
      server_cert_domain_san: "inst-n",
      private_instance_id: "inst-n",
    };
    await proxy.register(msg);
    await waitFor(() =>
      r1.router.registry.endpointCount === 1 &&
      r2.router.registry.endpointCount === 1
    );
    for (const t of [r1, r2]) {
      const res = await request(t.url, "nats.example.com");
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.text).backend, "N");
    }
    // router.greet is answered with the router.start payload.
    const greet = await proxy.greet(2000);
    assert.ok(greet && ["router-1", "router-2"].includes(greet.id));
    assert.equal(greet.minimumRegisterIntervalInSeconds, 20);
    assert.equal(greet.pruneThresholdInSeconds, 120);

    // A malformed message is counted and leaves the table alone.
    const raw = await NatsRouteBus.connect({
      servers: [nats.url],
      logger: silentLogger,
    });
    try {
      // deno-lint-ignore no-explicit-any
      await raw.register({ host: "", uris: [] } as any);
    } finally {
      await raw.close();
    }
    await waitFor(() =>
      r1.router.metrics().includes('result="invalid-message"')
    );
    assert.equal(r1.router.registry.endpointCount, 1);

    // router.start went out at start, and goes out again on reconnect.
    const published = (t: typeof r1) =>
      t.logs.filter((l) => l.event === "router-start-published").length;
    assert.equal(published(r1), 1);
    await nats.restart();
    await waitFor(() => published(r1) === 2 && published(r2) === 2, 15_000);
    await r1.router.pruneNow(); // runs (not suspended) once reconnected
    assert.equal(r1.router.registry.endpointCount, 1);

    await proxy.whenConnected(10_000);
    await proxy.unregister(msg);
    await waitFor(() =>
      r1.router.registry.endpointCount === 0 &&
      r2.router.registry.endpointCount === 0
    );
    assert.match(
      r2.router.metrics(),
      /registry_messages_total\{source="nats",action="unregister",result="ok"\} 1/,
    );
  } finally {
    await proxy.close();
    await backend.close();
    await r1.close();
    await r2.close();
  }
});

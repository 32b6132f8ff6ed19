/**
 * The proxy's `/status.json` over its real admin listener: registration state
 * per router (one that accepts, one that is down), a second instance without
 * routes, and the served certificate as `/certs` reports it.
 */
import assert from "node:assert/strict";
import { startProxy } from "../../lib/proxy/mod.ts";
import type { ProxyStatus } from "../../lib/status/mod.ts";
import { freePort } from "../_helpers/ports.ts";
import {
  createTestPki,
  memoryLogger,
  proxySection,
  startHttpApp,
  waitFor,
} from "../proxy/_helpers.ts";

Deno.test("proxy /status.json: registered and failing routers, an instance without routes, the served certificate", async () => {
  const pki = await createTestPki();
  const dirA = await Deno.makeTempDir();
  const dirB = await Deno.makeTempDir();
  await pki.writeInstance(dirA, { instanceId: "inst-a", app: "app-a" });
  await pki.writeInstance(dirB, { instanceId: "inst-b", app: "app-b" });
  const app = startHttpApp();
  let registered = 0;
  const router = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      if (new URL(req.url).pathname === "/v1/register") registered++;
      return Response.json({ ok: true });
    },
  ) as Deno.HttpServer<Deno.NetAddr>;
  const up = `http://127.0.0.1:${router.addr.port}`;
  const down = `http://127.0.0.1:${freePort()}`;
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      instances: [{
        credentials_dir: dirA,
        mode: "tls",
        listeners: [{
          name: "web",
          listen: "127.0.0.1:0",
          app: `127.0.0.1:${app.port}`,
        }],
        register: {
          routes: ["a.example.com"],
          host: "127.0.0.1",
          routers: [{ url: up }, { url: down }],
        },
      }, {
        credentials_dir: dirB,
        mode: "tls",
        listeners: [{
          name: "web",
          listen: "127.0.0.1:0",
          app: `127.0.0.1:${app.port}`,
        }],
      }],
    }),
    { watch: false, logger: memoryLogger().logger },
  );
  const admin = `http://127.0.0.1:${proxy.adminPort}`;
  try {
    const read = async () =>
      await (await fetch(`${admin}/status.json`)).json() as ProxyStatus;
    let s = await read();
    await waitFor(async () => {
      s = await read();
      return s.instances[0]!.registrations.every((r) => r.state !== "pending");
    }, 30_000);
    assert.ok(registered >= 1);
    const [a, b] = s.instances;
    assert.deepEqual(
      a!.registrations.map((r) => [r.target, r.state]),
      [[up, "registered"], [down, "failing"]],
    );
    assert.ok(Date.parse(a!.registrations[0]!.last_ok) > 0);
    assert.equal(a!.registrations[0]!.last_error, "");
    assert.equal(a!.registrations[1]!.last_ok, "");
    assert.match(a!.registrations[1]!.last_error, /^failed at \d{4}-/);
    assert.deepEqual(b!.registrations, []);
    // The served certificates, as /certs reports them.
    const certs = await (await fetch(`${admin}/certs`)).json();
    for (const [i, inst] of s.instances.entries()) {
      assert.equal(inst.certificate.serial, certs[i].serial);
      assert.equal(inst.certificate.identity, certs[i].instance);
      assert.equal(inst.certificate.not_after, certs[i].not_after);
      assert.ok(inst.certificate.time_left_ms > 0);
      assert.equal(
        inst.listeners[0]!.listen,
        `127.0.0.1:${proxy.port(inst.id, "web")}`,
      );
    }
    // The page shows the same states; the metric it comes from is on /metrics.
    const html = await (await fetch(`${admin}/status`)).text();
    assert.ok(html.includes(`data-target="${down}" data-state="failing"`));
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(
      metrics,
      /sigil_proxy_registration_last_result_timestamp_seconds\{instance="inst-a",target="http:\/\/127\.0\.0\.1:\d+",result="error"\} \d/,
    );
    // An unknown admin path lists the status endpoints.
    const nf = await fetch(`${admin}/nope`);
    assert.equal(nf.status, 404);
    assert.ok((await nf.json()).endpoints.includes("/status"));
  } finally {
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await router.shutdown();
    await Deno.remove(dirA, { recursive: true });
    await Deno.remove(dirB, { recursive: true });
  }
});

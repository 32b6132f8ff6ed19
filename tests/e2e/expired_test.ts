/**
 * A proxy whose certificate expired (the rotator could not renew it): the
 * router answers 526 naming the expiry, the proxy's /ready is false, it logs
 * the expiry and stops registering the instance (no alternation with 526 from
 * heartbeats re-adding the pruned endpoint) until fresh credentials arrive.
 *
 * The router verifies backends against real time; the proxy runs on a fake
 * clock that starts while the certificate is still valid, so crossing
 * notAfter is one `tick`, not a wait.
 */
import assert from "node:assert/strict";
import { startProxy } from "../../lib/proxy/mod.ts";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { memoryLogger, proxySection, startHttpApp } from "../proxy/_helpers.ts";
import { header, request, startTestRouter } from "../router/_helpers.ts";

const ROUTE = "expiring.example.com";
const DAY = 86_400_000;

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test("e2e: an expired proxy certificate gets a 526 naming the expiry, /ready false, cert-expired logged, routes withheld (no endpoint, no 526, no re-add) until fresh credentials register again", async () => {
  const t = await startTestRouter();
  const dir = await Deno.makeTempDir();
  const app = startHttpApp(() => "fresh");
  const realNow = Date.now();
  // Valid from 2 days ago until 1 day ago: expired for the router.
  await t.pki.writeInstance(dir, { instanceId: "inst-exp", app: "app-e" }, {
    now: realNow - 2 * DAY,
    validityMs: DAY,
  });
  const notAfter = realNow - DAY;
  const clock = new FakeClock(notAfter - 30_000);
  await Deno.writeTextFile(`${dir}/routes.jwt`, await t.token("routes.write"), {
    mode: 0o600,
  });
  const { logger, lines } = memoryLogger();
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      instances: [{
        id: "inst-exp",
        credentials_dir: dir,
        mode: "tls",
        listeners: [{ listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` }],
        register: {
          routes: [ROUTE],
          host: "127.0.0.1",
          tls_listener: 0,
          interval: "20s",
          routers: [{ url: t.apiUrl, token_file: `${dir}/routes.jwt` }],
        },
      }],
    }),
    { clock, random: () => 0, watch: false, logger },
  );
  const admin = `http://127.0.0.1:${proxy.adminPort}`;
  try {
    await waitFor(() => t.router.registry.endpointCount === 1, "registered");
    assert.equal(await proxy.ready(), true, "valid on the proxy's clock");

    // The router (real time) refuses it and says why.
    const refused = await request(t.url, ROUTE);
    assert.equal(refused.status, 526);
    assert.equal(
      header(refused, "x-cf-routererror"),
      "endpoint_failure (CERT_HAS_EXPIRED)",
    );
    assert.match(refused.text, /certificate expired/);
    assert.equal(t.router.registry.endpointCount, 0, "pruned");

    // The proxy's clock passes notAfter: heartbeats stop re-adding it.
    await clock.tick(60_000);
    assert.equal(await proxy.ready(), false);
    const ready = await fetch(`${admin}/ready`);
    assert.equal(ready.status, 503);
    const body = await ready.json();
    assert.equal(body.certificates[0].valid, false);
    assert.match(body.certificates[0].reason, /expired at /);
    const expiredLog = lines.filter((l) => l.event === "cert-expired");
    assert.equal(expiredLog.length, 1, "logged once");
    assert.equal(expiredLog[0]!.instance, "inst-exp");
    await waitFor(
      () => lines.some((l) => l.event === "routes-withheld"),
      "routes-withheld",
    );
    await waitFor(
      () => lines.some((l) => l.event === "routes-unregistered"),
      "unregister sent",
    );
    for (let i = 0; i < 3; i++) {
      await clock.tick(20_000);
      const res = await request(t.url, ROUTE);
      // gorouter's answers for a route that lost its endpoints: 503
      // no_endpoints during empty_pool_timeout, then 404; never the 526.
      assert.ok(
        (res.status === 503 &&
          header(res, "x-cf-routererror") === "no_endpoints") ||
          res.status === 404,
        `round ${i}: ${res.status} ${header(res, "x-cf-routererror")}`,
      );
      assert.equal(t.router.registry.endpointCount, 0);
    }

    // Fresh credentials (valid for both clocks) bring the route back.
    await t.pki.writeInstance(dir, { instanceId: "inst-exp", app: "app-e" }, {
      now: realNow - 2 * DAY,
      validityMs: 3 * DAY,
    });
    await proxy.reload();
    await waitFor(() => t.router.registry.endpointCount === 1, "re-registered");
    assert.ok(lines.some((l) => l.event === "routes-resumed"));
    const ok = await request(t.url, ROUTE);
    assert.equal(ok.status, 200);
    assert.equal(ok.text, "fresh");
    assert.equal(await proxy.ready(), true);
  } finally {
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

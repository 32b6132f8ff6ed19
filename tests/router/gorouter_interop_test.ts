/**
 * Interop with Cloud Foundry's own routing tier:
 *
 * - The REAL gorouter (`../shared/peers/gorouter.gz`) routes over NATS to a
 *   strict-mTLS `sigil proxy` subprocess: the proxy's `router.register`
 *   (tls_port, server_cert_domain_san = instance id) is what gorouter needs
 *   for route integrity, gorouter's backend client certificate passes the
 *   proxy's client checks, a proxy whose certificate names another instance
 *   is refused by gorouter, and the proxy's SIGTERM unregisters the route.
 * - Messages shaped exactly as CF's route-registrar and Diego's route-emitter
 *   publish them register on `sigil router` (and, for comparison, on the same
 *   gorouter), and their `router.unregister` removes them.
 *
 * Followed: gorouter `registry/registry.go`, `handlers/lookup.go`,
 * `proxy/round_tripper/proxy_round_tripper.go` (TLS backends, prune on a
 * hostname mismatch); route-registrar `messagebus/messagebus.go` (`Message`,
 * `SendMessage`); route-emitter `routingtable/registry_message.go`
 * (`RegistryMessage`, `RegistryMessageFor`, `populateMetricTags`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "../_helpers/nats.ts";
import { startGorouter } from "../_helpers/gorouter.ts";
import type { Gorouter } from "../_helpers/gorouter.ts";
import { createTestPki } from "../_helpers/pki.ts";
import type { TestPki } from "../_helpers/pki.ts";
import { SigilProcess } from "../_helpers/proc.ts";
import { hostRequest } from "../_helpers/http.ts";
import type { SimpleResponse } from "../_helpers/http.ts";
import { startTestRouter } from "./_helpers.ts";

const GOROUTER_SAN = "gorouter.service.cf.internal";

interface App {
  port: number;
  seen: Array<{ url: string; headers: Headers }>;
  server: Deno.HttpServer<Deno.NetAddr>;
}

/** A plain-HTTP app that records each request and answers `name`. */
function startApp(name: string): App {
  const seen: App["seen"] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, (req) => {
    seen.push({ url: new URL(req.url).pathname, headers: req.headers });
    return new Response(name);
  });
  return { port: server.addr.port, seen, server };
}

/** Polls `cond` every 200 ms for up to `ms` (generous: the machine is shared). */
async function waitUntil<T>(
  what: string,
  probe: () => Promise<T>,
  cond: (v: T) => boolean,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (cond(v)) return v;
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${what}: ${JSON.stringify(v)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Starts a strict-mTLS `sigil proxy` for `id` serving `cred` (written to
 * `dir/creds-<name>`), trusting the test root for clients, letting only
 * gorouter's SAN in, registering `route` on NATS every 5 s.
 */
async function startProxy(
  dir: string,
  name: string,
  o: {
    id: string;
    certFor: string;
    pki: TestPki;
    appPort: number;
    route: string;
    natsUrl: string;
  },
): Promise<{ proc: SigilProcess; tlsPort: number }> {
  const creds = join(dir, `creds-${name}`);
  await o.pki.writeInstance(creds, { instanceId: o.certFor, app: "app-go" });
  const file = join(dir, `proxy-${name}.yaml`);
  await Deno.writeTextFile(
    file,
    [
      "proxy:",
      `  admin_listen: "127.0.0.1:0"`,
      `  drain_timeout: "1s"`,
      `  connect_timeout: "10s"`,
      "  instances:",
      `    - id: ${o.id}`,
      `      credentials_dir: ${creds}`,
      "      mode: mtls",
      `      trusted_client_cas: [${join(dir, "root.pem")}]`,
      `      allowed_client_sans: ["${GOROUTER_SAN}"]`,
      "      listeners:",
      "        - name: http",
      `          listen: "127.0.0.1:0"`,
      `          app: "127.0.0.1:${o.appPort}"`,
      "      register:",
      `        routes: ["${o.route}"]`,
      `        host: "127.0.0.1"`,
      `        app: app-go`,
      `        interval: "5s"`,
      "        nats:",
      `          servers: ["${o.natsUrl}"]`,
    ].join("\n") + "\n",
  );
  const proc = new SigilProcess(["proxy", "--config", file]);
  const inst = await proc.waitForEvent("instance-started", 60_000);
  const tlsPort = (inst.listeners as Array<{ port: number }>)[0]!.port;
  return { proc, tlsPort };
}

/** gorouter's endpoints for `host` (none when it does not know the route). */
async function endpoints(go: Gorouter, host: string) {
  return (await go.routes())[host] ?? [];
}

Deno.test("the real gorouter routes over NATS to a strict-mTLS sigil proxy, checks its identity, and drops the route after the proxy's SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-go-interop-" });
  const pki = await createTestPki();
  await Deno.writeTextFile(join(dir, "root.pem"), pki.rootPem);
  await using nats = await startNatsServer();
  const goCred = await pki.issueClient({
    commonName: GOROUTER_SAN,
    dnsNames: [GOROUTER_SAN],
  });
  const app = startApp("app-go");
  const impostorApp = startApp("impostor");
  const procs: SigilProcess[] = [];
  try {
    await using go = await startGorouter(dir, {
      natsPort: nats.port,
      caCerts: [pki.rootPem],
      backendCert: goCred,
    });
    const proxy = await startProxy(dir, "real", {
      id: "inst-go-1",
      certFor: "inst-go-1",
      pki,
      appPort: app.port,
      route: "interop.example.com",
      natsUrl: nats.url,
    });
    procs.push(proxy.proc);

    // The registration as gorouter stored it: a TLS endpoint whose
    // certificate must name the instance.
    const [ep] = await waitUntil(
      "gorouter to learn interop.example.com",
      () => endpoints(go, "interop.example.com"),
      (e) => e.length === 1,
    );
    assert.equal(ep!.address, `127.0.0.1:${proxy.tlsPort}`);
    assert.equal(ep!.tls, true);
    assert.equal(ep!.server_cert_domain_san, "inst-go-1");
    assert.equal(ep!.private_instance_id, "inst-go-1");

    // Through gorouter, gorouter's client cert, the proxy's mTLS, to the app.
    const res = await hostRequest(go.port, "interop.example.com", "/hello");
    assert.equal(res.status, 200, `${res.body}\n${go.output().slice(-2000)}`);
    assert.equal(res.body, "app-go");
    const got = app.seen.at(-1)!;
    assert.equal(got.url, "/hello");
    assert.equal(got.headers.get("host"), "interop.example.com");
    assert.equal(got.headers.get("x-forwarded-proto"), "http");
    assert.match(got.headers.get("x-forwarded-for") ?? "", /127\.0\.0\.1/);
    assert.match(got.headers.get("x-vcap-request-id") ?? "", /^[0-9a-f-]{36}$/);

    // Identity: a proxy holding inst-go-2's certificate that registers as
    // inst-go-1 is refused by gorouter; its app never sees the request.
    const impostor = await startProxy(dir, "impostor", {
      id: "inst-go-1",
      certFor: "inst-go-2",
      pki,
      appPort: impostorApp.port,
      route: "impostor.example.com",
      natsUrl: nats.url,
    });
    procs.push(impostor.proc);
    const [bad] = await waitUntil(
      "gorouter to learn impostor.example.com",
      () => endpoints(go, "impostor.example.com"),
      (e) => e.length === 1,
    );
    assert.equal(bad!.server_cert_domain_san, "inst-go-1");
    const refused = await hostRequest(go.port, "impostor.example.com", "/");
    assert.equal(refused.status, 503, refused.body);
    assert.deepEqual(impostorApp.seen, []);

    // SIGTERM: the proxy sends router.unregister; gorouter drops the route.
    const stopped = await proxy.proc.stop("SIGTERM");
    assert.equal(stopped.code, 0);
    await waitUntil(
      "gorouter to drop interop.example.com",
      () => endpoints(go, "interop.example.com"),
      (e) => e.length === 0,
    );
    const gone: SimpleResponse = await hostRequest(
      go.port,
      "interop.example.com",
      "/hello",
    );
    assert.equal(gone.status, 404, gone.body);
    assert.equal(gone.headers["x-cf-routererror"], "unknown_route");
  } finally {
    for (const p of procs.reverse()) await p.stop("SIGTERM").catch(() => {});
    await app.server.shutdown();
    await impostorApp.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

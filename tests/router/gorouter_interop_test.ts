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
import { runTool, SigilProcess } from "../_helpers/proc.ts";
import { hostRequest } from "../_helpers/http.ts";
import type { SimpleResponse } from "../_helpers/http.ts";
import { startBackend, startTestRouter } from "./_helpers.ts";

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
    // Starts a proxy registering `route` as inst-go-1 with `certFor`'s
    // certificate; resolves with it and gorouter's endpoint for the route.
    const registered = async (
      name: string,
      certFor: string,
      appPort: number,
      route: string,
    ) => {
      const p = await startProxy(dir, name, {
        id: "inst-go-1",
        certFor,
        pki,
        appPort,
        route,
        natsUrl: nats.url,
      });
      procs.push(p.proc);
      const [e] = await waitUntil(
        `gorouter to learn ${route}`,
        () => endpoints(go, route),
        (e) => e.length === 1,
      );
      return { ...p, endpoint: e! };
    };
    const proxy = await registered(
      "real",
      "inst-go-1",
      app.port,
      "interop.example.com",
    );

    // The registration as gorouter stored it: a TLS endpoint whose
    // certificate must name the instance.
    const ep = proxy.endpoint;
    assert.equal(ep.address, `127.0.0.1:${proxy.tlsPort}`);
    assert.equal(ep.tls, true);
    assert.equal(ep.server_cert_domain_san, "inst-go-1");
    assert.equal(ep.private_instance_id, "inst-go-1");

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

    // The proxy is strict: curl with the same CA but no client certificate,
    // or one whose SAN is not gorouter's, does not get through.
    const other = await pki.issueClient({ dnsNames: ["someone-else"] });
    await Deno.writeTextFile(join(dir, "other.crt"), other.certPem);
    await Deno.writeTextFile(join(dir, "other.key"), other.keyPem);
    await Deno.writeTextFile(join(dir, "go.crt"), goCred.certPem);
    await Deno.writeTextFile(join(dir, "go.key"), goCred.keyPem);
    const curl = (...extra: string[]) =>
      runTool("curl", [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "30",
        "--cacert",
        join(dir, "root.pem"),
        "--resolve",
        `inst-go-1:${proxy.tlsPort}:127.0.0.1`,
        ...extra,
        `https://inst-go-1:${proxy.tlsPort}/direct`,
      ]);
    const seenBefore = app.seen.length;
    assert.notEqual((await curl()).stdout, "200");
    assert.notEqual(
      (await curl(
        "--cert",
        join(dir, "other.crt"),
        "--key",
        join(dir, "other.key"),
      )).stdout,
      "200",
    );
    assert.equal(app.seen.length, seenBefore);
    const asGorouter = await curl(
      "--cert",
      join(dir, "go.crt"),
      "--key",
      join(dir, "go.key"),
    );
    assert.equal(asGorouter.stdout, "200", asGorouter.stderr);

    // Identity: a proxy holding inst-go-2's certificate that registers as
    // inst-go-1 is refused by gorouter; its app never sees the request.
    const impostor = await registered(
      "impostor",
      "inst-go-2",
      impostorApp.port,
      "impostor.example.com",
    );
    assert.equal(impostor.endpoint.server_cert_domain_san, "inst-go-1");
    const refused = await hostRequest(go.port, "impostor.example.com", "/");
    assert.equal(refused.status, 503, refused.body);
    // gorouter names the failure: hostname verification against the SAN.
    assert.match(
      String(refused.headers["x-cf-routererror"]),
      /^endpoint_failure \(x509: certificate is valid for inst-go-2, not inst-go-1\)$/,
    );
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

/**
 * route-registrar `messagebus/messagebus.go`: `json.Marshal` of `Message`
 * (field order as the struct; `tags` and `private_instance_id` have no
 * omitempty, so a route without tags sends `"tags": null`; the id is the
 * UUID `registrar/registrar.go` makes at start; `availability_zone` and
 * `options.loadbalancing` from its config).
 */
function routeRegistrarMessages(plainPort: number, tlsPort: number) {
  return [
    {
      uris: ["registrar.example.com"],
      host: "127.0.0.1",
      port: plainPort,
      tags: { component: "uaa", env: "test" },
      private_instance_id: "7b1c1a34-8f53-4c67-9a4b-0d5ad7f0c5e1",
      availability_zone: "z1",
      options: { loadbalancing: "least-connection" },
    },
    {
      uris: ["registrar-tls.example.com"],
      host: "127.0.0.1",
      tls_port: tlsPort,
      tags: null,
      private_instance_id: "7b1c1a34-8f53-4c67-9a4b-0d5ad7f0c5e1",
      server_cert_domain_san: "registrar-tls",
    },
  ];
}

/**
 * route-emitter `routingtable/registry_message.go` `RegistryMessageFor`:
 * `port` (no omitempty) is the container's host port, `tls_port` the
 * envoy port, one URI per message, `app` the log GUID, the instance GUID as
 * both `private_instance_id` and `server_cert_domain_san`, the index as a
 * string, `tags` from `populateMetricTags` (always `component:
 * route-emitter`), `options` passed through raw.
 */
function routeEmitterMessage(plainPort: number, tlsPort: number) {
  return {
    host: "127.0.0.1",
    port: plainPort,
    tls_port: tlsPort,
    uris: ["emitter.example.com"],
    app: "9f3c2a8e-log-guid",
    private_instance_id: "emitter-inst",
    private_instance_index: "2",
    server_cert_domain_san: "emitter-inst",
    isolation_segment: "iso-1",
    endpoint_updated_at_ns: 1_700_000_000_000_000_000,
    tags: {
      component: "route-emitter",
      process_id: "9f3c2a8e-process-guid",
      instance_guid: "emitter-inst",
      index: "2",
    },
    availability_zone: "z2",
    options: { loadbalancing: "round-robin" },
  };
}

Deno.test("route-registrar- and route-emitter-shaped NATS messages register on sigil router and on gorouter, and unregister", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-cf-msgs-" });
  await using nats = await startNatsServer();
  // A long empty-pool window so the 503 below does not race a loaded machine.
  const t = await startTestRouter({
    nats: { servers: [nats.url] },
    empty_pool_timeout: "10m",
  });
  const goCred = await t.pki.issueClient({ dnsNames: [GOROUTER_SAN] });
  const plain = startApp("plain");
  const tlsRegistrar = await startBackend({
    name: "registrar-tls",
    cred: await t.pki.issueInstance({ instanceId: "registrar-tls" }),
  });
  const tlsEmitter = await startBackend({
    name: "emitter",
    cred: await t.pki.issueInstance({ instanceId: "emitter-inst" }),
  });
  const nc = await connect({ servers: nats.url });
  try {
    await using go = await startGorouter(dir, {
      natsPort: nats.port,
      caCerts: [t.pki.rootPem],
      backendCert: goCred,
    });
    const messages = [
      ...routeRegistrarMessages(plain.port, tlsRegistrar.port),
      routeEmitterMessage(plain.port, tlsEmitter.port),
    ];
    const hosts = messages.map((m) => m.uris[0]!);
    const publish = async (subject: string) => {
      for (const m of messages) nc.publish(subject, JSON.stringify(m));
      await nc.flush();
    };
    const sigilRoutes = async () =>
      await (await fetch(`${t.apiUrl}/routes`)).json() as Record<
        string,
        Array<Record<string, unknown>>
      >;
    await publish("router.register");
    const inSigil = await waitUntil(
      "sigil router to learn the CF-shaped routes",
      sigilRoutes,
      (r) => hosts.every((h) => (r[h]?.length ?? 0) === 1),
    );
    // gorouter subscribes a moment after it starts: publish until it knows.
    const inGo = await waitUntil(
      "gorouter to learn the CF-shaped routes",
      async () => {
        await publish("router.register");
        return await go.routes();
      },
      (r) => hosts.every((h) => (r[h]?.length ?? 0) === 1),
    );
    // Every field this gorouter shows for an endpoint, sigil shows the same.
    for (const h of hosts) {
      const [g] = inGo[h]!;
      const [e] = inSigil[h]!;
      for (const [k, v] of Object.entries(g!)) {
        assert.deepEqual(e![k], v, `${h}: ${k}`);
      }
    }
    const [registrar] = inSigil["registrar.example.com"]!;
    assert.equal(registrar!.address, `127.0.0.1:${plain.port}`);
    assert.equal(registrar!.tls, false);
    assert.deepEqual(registrar!.tags, { component: "uaa", env: "test" });
    const [registrarTls] = inSigil["registrar-tls.example.com"]!;
    assert.equal(registrarTls!.tls, true);
    assert.equal(registrarTls!.tags, null);
    assert.equal(registrarTls!.server_cert_domain_san, "registrar-tls");
    const [emitter] = inSigil["emitter.example.com"]!;
    assert.equal(emitter!.address, `127.0.0.1:${tlsEmitter.port}`);
    assert.equal(emitter!.tls, true);
    assert.equal(emitter!.isolation_segment, "iso-1");
    assert.equal(emitter!.private_instance_id, "emitter-inst");
    // Newer gorouters show these too; this April 2023 build does not.
    assert.equal(registrar!.availability_zone, "z1");
    assert.equal(registrar!.load_balancing_algorithm, "least-connection");
    assert.equal(emitter!.availability_zone, "z2");
    assert.equal(emitter!.load_balancing_algorithm, "round-robin");

    for (
      const [router, port] of [["sigil", t.router.port], [
        "gorouter",
        go.port,
      ]] as const
    ) {
      const a = await hostRequest(port, "registrar.example.com", "/r");
      assert.equal(a.status, 200, `${router}: ${a.body}`);
      assert.equal(a.body, "plain");
      const b = await hostRequest(port, "registrar-tls.example.com", "/r");
      assert.equal(b.status, 200, `${router}: ${b.body}`);
      assert.equal(JSON.parse(b.body).backend, "registrar-tls");
      const c = await hostRequest(port, "emitter.example.com", "/e");
      assert.equal(c.status, 200, `${router}: ${c.body}`);
      assert.equal(JSON.parse(c.body).backend, "emitter");
    }

    await publish("router.unregister");
    await waitUntil(
      "sigil router to drop the CF-shaped routes",
      sigilRoutes,
      (r) => hosts.every((h) => (r[h]?.length ?? 0) === 0),
    );
    await waitUntil(
      "gorouter to drop the CF-shaped routes",
      () => go.routes(),
      (r) => hosts.every((h) => (r[h]?.length ?? 0) === 0),
    );
    // sigil answers an emptied route 503 no_endpoints for
    // `empty_pool_timeout` as current gorouter does with
    // empty_pool_response_code_503; this gorouter build answers 404 at once.
    for (const h of hosts) {
      const s = await hostRequest(t.router.port, h, "/");
      assert.equal(s.status, 503, s.body);
      assert.equal(s.headers["x-cf-routererror"], "no_endpoints");
      const g = await hostRequest(go.port, h, "/");
      assert.equal(g.status, 404, g.body);
      assert.equal(g.headers["x-cf-routererror"], "unknown_route");
    }
  } finally {
    await nc.close();
    await plain.server.shutdown();
    await tlsRegistrar.close();
    await tlsEmitter.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

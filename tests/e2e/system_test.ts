/**
 * The whole path with every role as its own `sigil` process: CA, rotator,
 * three strict-mTLS proxies (two instances of app A, one of app B) and the
 * router, with two small apps in this test process.
 */
import assert from "node:assert/strict";
import { Agent } from "node:http";
import { join } from "node:path";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import { hostGet } from "../_helpers/http.ts";

interface App {
  port: number;
  hostsSeen: Map<string, number>;
  server: Deno.HttpServer;
}

function startApp(name: string): App {
  const hostsSeen = new Map<string, number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, (req) => {
    const host = req.headers.get("host") ?? "";
    hostsSeen.set(host, (hostsSeen.get(host) ?? 0) + 1);
    return new Response(name);
  });
  return { port: server.addr.port, hostsSeen, server };
}

async function adminJson(port: number, path: string) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return await r.json();
}

Deno.test("e2e: CA + rotator + mTLS proxies + router route by Host, rotate under traffic, refuse stale endpoints, unregister on stop", async () => {
  const dir = await Deno.makeTempDir();
  const procs: SigilProcess[] = [];
  const apps: App[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  try {
    const caDir = join(dir, "ca");
    assert.equal(
      (await sigil([
        "ca",
        "init",
        "--dir",
        caDir,
        "--trust-domain",
        "e2e.test",
      ])).code,
      0,
    );
    const cellTok = await sigil([
      "ca",
      "token",
      "--dir",
      caDir,
      "--subject",
      "cell-1",
      "--app",
      "app-*",
      "--space",
      "space-1",
      "--org",
      "org-1",
      "--cidr",
      "127.0.0.0/8",
    ]);
    const routesTok = await sigil([
      "ca",
      "token",
      "--dir",
      caDir,
      "--subject",
      "cell-1-routes",
      "--scope",
      "routes.write",
    ]);
    await Deno.writeTextFile(join(dir, "cell.jwt"), cellTok.stdout.trim(), {
      mode: 0o600,
    });
    await Deno.writeTextFile(join(dir, "routes.jwt"), routesTok.stdout.trim(), {
      mode: 0o600,
    });
    const rc = await sigil([
      "ca",
      "issue",
      "--dir",
      caDir,
      "--instance",
      "router-1",
      "--app",
      "router",
      "--space",
      "system",
      "--org",
      "system",
      "--validity",
      "24h",
      "--out",
      join(dir, "router"),
    ]);
    assert.equal(rc.code, 0, rc.stderr);
    const root = join(caDir, "root.crt");

    // CA
    await Deno.writeTextFile(
      join(dir, "ca.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    const ca = new SigilProcess([
      "ca",
      "serve",
      "--config",
      join(dir, "ca.yaml"),
    ]);
    procs.push(ca);
    const caUrl = `https://${(await ca.waitForEvent("ca-listening")).address}`;

    // Apps and instances
    const appA1 = startApp("app-a"),
      appA2 = startApp("app-a"),
      appB = startApp("app-b");
    apps.push(appA1, appA2, appB);
    const instances = [
      {
        id: "inst-a1",
        app: "app-a",
        appPort: appA1.port,
        route: "a.test",
        index: 0,
      },
      {
        id: "inst-a2",
        app: "app-a",
        appPort: appA2.port,
        route: "a.test",
        index: 1,
      },
      {
        id: "inst-b1",
        app: "app-b",
        appPort: appB.port,
        route: "b.test",
        index: 0,
      },
    ];

    // Rotator: 1-minute certificates renewed 50 s before expiry (every ~10 s).
    await Deno.writeTextFile(
      join(dir, "rotator.yaml"),
      [
        "rotator:",
        `  ca_url: "${caUrl}"`,
        `  ca_bundle: ${root}`,
        `  token_file: ${join(dir, "cell.jwt")}`,
        `  validity: "1m"`,
        `  renew_at: "50s"`,
        `  min_interval: "5s"`,
        "  instances:",
        ...instances.flatMap((i) => [
          `    - instance_id: ${i.id}`,
          `      app: ${i.app}`,
          "      space: space-1",
          "      org: org-1",
          `      ips: ["127.0.0.1"]`,
          `      dir: ${join(dir, "creds", i.id)}`,
        ]),
      ].join("\n") + "\n",
    );
    const rotator = new SigilProcess([
      "rotator",
      "--config",
      join(dir, "rotator.yaml"),
    ]);
    procs.push(rotator);
    for (const i of instances) {
      await rotator.waitFor((l) =>
        l.event === "cert-issued" && l.instance === i.id
      );
    }

    // Router
    await Deno.writeTextFile(
      join(dir, "router.yaml"),
      [
        "router:",
        "  drain_wait: 0s",
        `  listen: "127.0.0.1:0"`,
        "  api:",
        `    listen: "127.0.0.1:0"`,
        `    jwks_url: "${caUrl}/v1/jwks.json"`,
        `    ca_bundle: ${root}`,
        "  backends:",
        "    mode: mtls",
        `    ca: ${root}`,
        `    cert: ${join(dir, "router", "instance.crt")}`,
        `    key: ${join(dir, "router", "instance.key")}`,
        "  access_log:",
        `    file: ${join(dir, "access.log")}`,
      ].join("\n") + "\n",
    );
    const router = new SigilProcess([
      "router",
      "--config",
      join(dir, "router.yaml"),
    ]);
    procs.push(router);
    const started = await router.waitForEvent("router-started");
    const routerPort = started.port as number;
    const apiPort = started.api_port as number;

    // One proxy process per instance, strict mTLS, only the router's SAN allowed in.
    const proxies = new Map<
      string,
      { proc: SigilProcess; tlsPort: number; adminPort: number }
    >();
    for (const i of instances) {
      const file = join(dir, `proxy-${i.id}.yaml`);
      await Deno.writeTextFile(
        file,
        [
          "proxy:",
          `  admin_listen: "127.0.0.1:0"`,
          `  drain_timeout: "3s"`,
          `  connect_timeout: "10s"`, // not the 250 ms default on a loaded machine
          `  reload_poll_interval: "1s"`,
          "  instances:",
          `    - id: ${i.id}`,
          `      credentials_dir: ${join(dir, "creds", i.id)}`,
          "      mode: mtls",
          `      trusted_client_cas: [${root}]`,
          `      allowed_client_sans: ["router-1"]`,
          "      listeners:",
          `        - name: http`,
          `          listen: "127.0.0.1:0"`,
          `          app: "127.0.0.1:${i.appPort}"`,
          "      register:",
          `        routes: ["${i.route}"]`,
          `        host: "127.0.0.1"`,
          `        app: ${i.app}`,
          `        instance_index: "${i.index}"`,
          `        interval: "2s"`,
          "        routers:",
          `          - url: "http://127.0.0.1:${apiPort}"`,
          `            token_file: ${join(dir, "routes.jwt")}`,
        ].join("\n") + "\n",
      );
      const proc = new SigilProcess(["proxy", "--config", file]);
      procs.push(proc);
      const inst = await proc.waitForEvent("instance-started");
      const ps = await proc.waitForEvent("proxy-started");
      const tlsPort = (inst.listeners as Array<{ port: number }>)[0]!.port;
      const adminPort = Number(String(ps.admin).split(":").pop());
      proxies.set(i.id, { proc, tlsPort, adminPort });
    }

    // Wait for the registrations.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const routes = await (await fetch(`http://127.0.0.1:${apiPort}/routes`))
        .json();
      if (
        (routes["a.test"]?.length ?? 0) === 2 &&
        (routes["b.test"]?.length ?? 0) === 1
      ) break;
      assert.ok(
        Date.now() < deadline,
        `routes not registered: ${JSON.stringify(routes)}`,
      );
      await new Promise((r) => setTimeout(r, 100));
    }

    // 1. Requests by Host reach the right app.
    assert.equal(
      (await hostGet(routerPort, "a.test", "/", agent)).body,
      "app-a",
    );
    assert.equal(
      (await hostGet(routerPort, "b.test", "/", agent)).body,
      "app-b",
    );
    assert.equal(
      (await hostGet(routerPort, "nothing.test", "/", agent)).status,
      404,
    );

    // 2. Certificates rotate during continuous traffic with zero failed requests.
    const servedBefore = new Map<string, string>();
    for (const [id, p] of proxies) {
      servedBefore.set(id, (await adminJson(p.adminPort, "/certs"))[0].serial);
    }
    let ok = 0;
    const failures: string[] = [];
    const until = Date.now() + 24_000;
    while (Date.now() < until) {
      for (const [host, want] of [["a.test", "app-a"], ["b.test", "app-b"]]) {
        const r = await hostGet(routerPort, host!, "/", agent).catch((e) => ({
          status: 0,
          body: String(e),
        }));
        if (r.status === 200 && r.body === want) ok++;
        else failures.push(`${host}: ${r.status} ${r.body.slice(0, 80)}`);
      }
    }
    assert.deepEqual(failures, [], "no failed requests during rotation");
    assert.ok(ok > 200, `traffic flowed (${ok} requests)`);
    for (const [id, p] of proxies) {
      const now = (await adminJson(p.adminPort, "/certs"))[0].serial;
      assert.notEqual(
        now,
        servedBefore.get(id),
        `${id} serves a rotated certificate`,
      );
    }

    // 3. A stale registration pointing at the wrong instance never delivers a request there.
    const b = proxies.get("inst-b1")!;
    const seenBefore = appB.hostsSeen.get("a.test") ?? 0;
    const reg = await fetch(`http://127.0.0.1:${apiPort}/v1/register`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${routesTok.stdout.trim()}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({
        host: "127.0.0.1",
        tls_port: b.tlsPort,
        uris: ["a.test"],
        app: "app-a",
        private_instance_id: "inst-a1",
        server_cert_domain_san: "inst-a1",
      }),
    });
    assert.equal(reg.status, 200, await reg.text());
    for (let k = 0; k < 12; k++) {
      const r = await hostGet(routerPort, "a.test", "/", agent);
      assert.equal(r.status, 200);
      assert.equal(r.body, "app-a");
    }
    assert.equal(
      appB.hostsSeen.get("a.test") ?? 0,
      seenBefore,
      "app B never saw a request for a.test",
    );
    const routesAfter =
      await (await fetch(`http://127.0.0.1:${apiPort}/routes`)).json();
    assert.ok(
      !routesAfter["a.test"].some((e: { address: string }) =>
        e.address === `127.0.0.1:${b.tlsPort}`
      ),
      "stale endpoint pruned",
    );
    await router.waitForEvent("backend-failed");

    // 4. Stopping a proxy unregisters it; traffic moves to the other instance.
    const a1 = proxies.get("inst-a1")!;
    const stopped = await a1.proc.stop("SIGTERM");
    assert.equal(stopped.code, 0);
    const routesNow = await (await fetch(`http://127.0.0.1:${apiPort}/routes`))
      .json();
    assert.deepEqual(
      routesNow["a.test"].map((e: { private_instance_id: string }) =>
        e.private_instance_id
      ),
      ["inst-a2"],
    );
    const a2Before = appA2.hostsSeen.get("a.test") ?? 0;
    for (let k = 0; k < 10; k++) {
      const r = await hostGet(routerPort, "a.test", "/", agent);
      assert.equal(r.status, 200);
    }
    assert.equal((appA2.hostsSeen.get("a.test") ?? 0) - a2Before, 10);
  } finally {
    agent.destroy();
    for (const p of procs.reverse()) await p.stop("SIGTERM").catch(() => {});
    for (const a of apps) await a.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

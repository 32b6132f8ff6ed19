import assert from "node:assert/strict";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { parseRegistryMessage } from "../../lib/routes/mod.ts";
import type { RegistryMessage, RouteSink } from "../../lib/routes/mod.ts";
import {
  buildRegistryMessage,
  HttpRouteSink,
  RegistrationError,
  startProxy,
} from "../../lib/proxy/mod.ts";
import {
  createTestPki,
  memoryLogger,
  proxySection,
  startHttpApp,
  tempDir,
  waitFor,
} from "./_helpers.ts";

const pki = await createTestPki();

class RecordingSink implements RouteSink {
  events: Array<{ action: string; message: RegistryMessage; at: number }> = [];
  closed = false;
  constructor(private clock: FakeClock) {}
  register(message: RegistryMessage) {
    this.events.push({ action: "register", message, at: this.clock.now() });
    return Promise.resolve();
  }
  unregister(message: RegistryMessage) {
    this.events.push({ action: "unregister", message, at: this.clock.now() });
    return Promise.resolve();
  }
  close() {
    this.closed = true;
    return Promise.resolve();
  }
}

/** A fake router registration API that records what it receives. */
function fakeRouter(
  opts: { cert?: string; key?: string; token?: string } = {},
) {
  const received: Array<{ path: string; auth: string | null; body: unknown }> =
    [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
  }, async (req) => {
    const auth = req.headers.get("authorization");
    const body = await req.json();
    received.push({ path: new URL(req.url).pathname, auth, body });
    if (opts.token && auth !== `Bearer ${opts.token}`) {
      return new Response("unauthorized", { status: 401 });
    }
    return new Response(null, { status: 204 });
  }) as Deno.HttpServer<Deno.NetAddr>;
  return { server, received, port: server.addr.port };
}

Deno.test("buildRegistryMessage() builds a valid Cloud Foundry router.register message", () => {
  const m = buildRegistryMessage({
    instanceId: "a7c",
    app: "app-guid",
    tlsPort: 61001,
    register: {
      routes: ["hello.example.com", "hello.example.com/api"],
      host: "10.0.0.5",
      tls_listener: 0,
      instance_index: "3",
      tags: { az: "z1" },
      interval: 20_000,
      jitter: 0.2,
      routers: [],
    },
  });
  assert.deepEqual(parseRegistryMessage(JSON.stringify(m)), m);
  assert.deepEqual(m, {
    host: "10.0.0.5",
    tls_port: 61001,
    uris: ["hello.example.com", "hello.example.com/api"],
    app: "app-guid",
    private_instance_id: "a7c",
    private_instance_index: "3",
    server_cert_domain_san: "a7c",
    tags: { component: "sigil-proxy", az: "z1" },
  });
});

Deno.test("startProxy() registers at start, then every interval plus jitter (fake clock), and unregisters on close", async () => {
  const dir = await tempDir();
  await pki.writeInstance(dir, { instanceId: "inst-1", app: "app-7" });
  const app = startHttpApp();
  const clock = new FakeClock(Date.now());
  const sink = new RecordingSink(clock);
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      instances: [{
        credentials_dir: dir,
        mode: "tls",
        listeners: [
          { name: "ssh", listen: "127.0.0.1:0", app: "127.0.0.1:2222" },
          { name: "http", listen: "127.0.0.1:0", app: `127.0.0.1:${app.port}` },
        ],
        register: {
          routes: ["hello.example.com"],
          host: "10.0.0.5",
          tls_listener: "http",
          routers: [{ url: "http://127.0.0.1:9" }],
        },
      }],
    }),
    {
      clock,
      random: () => 0.5,
      watch: false,
      logger: memoryLogger().logger,
      sinks: () => [{ name: "recording", sink }],
    },
  );
  try {
    const t0 = clock.now();
    await waitFor(() => sink.events.length === 1);
    const first = sink.events[0]!;
    assert.equal(first.action, "register");
    assert.deepEqual(parseRegistryMessage(JSON.stringify(first.message)), {
      host: "10.0.0.5",
      tls_port: proxy.port("inst-1", "http"),
      uris: ["hello.example.com"],
      app: "app-7",
      private_instance_id: "inst-1",
      private_instance_index: "0",
      server_cert_domain_san: "inst-1",
      tags: { component: "sigil-proxy" },
    });
    // 20 s + 0.5 × 20% jitter = 22 s between heartbeats.
    await clock.tick(21_999);
    assert.equal(sink.events.length, 1);
    await clock.tick(1);
    assert.equal(sink.events.length, 2);
    assert.equal(sink.events[1]!.at - t0, 22_000);
    await clock.tick(22_000 * 3);
    assert.equal(sink.events.length, 5);
    assert.ok(sink.events.every((e) => e.action === "register"));
  } finally {
    await proxy.close({ drainTimeoutMs: 0 });
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
  const last = sink.events.at(-1)!;
  assert.equal(last.action, "unregister");
  assert.equal(last.message.server_cert_domain_san, "inst-1");
  assert.ok(sink.closed);
  assert.equal(clock.pending, 0);
});

Deno.test("HttpRouteSink posts RegistryMessage JSON with the bearer token over http", async () => {
  const dir = await tempDir();
  await Deno.writeTextFile(`${dir}/token`, "s3cret-token\n", {
    mode: 0o600,
  });
  const router = fakeRouter({ token: "s3cret-token" });
  const sink = new HttpRouteSink({
    url: `http://127.0.0.1:${router.port}/`,
    tokenFile: `${dir}/token`,
  });
  const m = buildRegistryMessage({
    instanceId: "a7c",
    tlsPort: 61001,
    register: {
      routes: ["a.example.com"],
      host: "10.0.0.5",
      tls_listener: 0,
      instance_index: "0",
      tags: {},
      interval: 20_000,
      jitter: 0.2,
      routers: [],
    },
  });
  try {
    await sink.register(m);
    await sink.unregister(m);
    assert.deepEqual(router.received.map((r) => r.path), [
      "/v1/register",
      "/v1/unregister",
    ]);
    assert.equal(router.received[0]!.auth, "Bearer s3cret-token");
    assert.deepEqual(router.received[0]!.body, m);
    await Deno.writeTextFile(`${dir}/token`, "wrong");
    await assert.rejects(sink.register(m), (err: unknown) => {
      assert.ok(err instanceof RegistrationError);
      assert.match(err.message, /HTTP 401/);
      assert.doesNotMatch(err.message, /wrong|s3cret/);
      return true;
    });
  } finally {
    await sink.close();
    await router.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HttpRouteSink trusts an https router through ca_bundle", async () => {
  const dir = await tempDir();
  const server = await pki.issueClient({
    commonName: "router",
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
  });
  await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
  const router = fakeRouter({ cert: server.certPem, key: server.keyPem });
  const sink = new HttpRouteSink({
    url: `https://127.0.0.1:${router.port}`,
    caBundle: `${dir}/ca.pem`,
  });
  const untrusted = new HttpRouteSink({
    url: `https://127.0.0.1:${router.port}`,
  });
  const m: RegistryMessage = {
    host: "10.0.0.5",
    tls_port: 61001,
    uris: ["a.example.com"],
    server_cert_domain_san: "a7c",
  };
  try {
    await sink.register(m);
    assert.equal(router.received.length, 1);
    await assert.rejects(untrusted.register(m), RegistrationError);
  } finally {
    await sink.close();
    await untrusted.close();
    await router.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil proxy registers with the router, reloads on SIGHUP, and on SIGTERM unregisters, drains and exits 0", async () => {
  const dir = await tempDir();
  await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-9" });
  await Deno.writeTextFile(`${dir}/token`, "tok", { mode: 0o600 });
  const router = fakeRouter({ token: "tok" });
  const app = startHttpApp();
  await Deno.writeTextFile(
    `${dir}/sigil.yaml`,
    [
      "proxy:",
      "  admin_listen: 127.0.0.1:0",
      "  drain_timeout: 2s",
      "  instances:",
      `    - credentials_dir: ${dir}/creds`,
      "      mode: tls",
      "      listeners:",
      `        - { listen: "127.0.0.1:0", app: "127.0.0.1:${app.port}" }`,
      "      register:",
      "        routes: [hello.example.com]",
      "        host: 10.0.0.5",
      "        routers:",
      `          - url: http://127.0.0.1:${router.port}`,
      `            token_file: ${dir}/token`,
    ].join("\n"),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "proxy", "--config", `${dir}/sigil.yaml`],
    cwd: new URL("../../", import.meta.url).pathname,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    await waitFor(
      () => router.received.some((r) => r.path === "/v1/register"),
      15_000,
      "the first registration",
    );
    const reg = router.received.find((r) => r.path === "/v1/register")!;
    assert.equal(reg.auth, "Bearer tok");
    assert.equal(
      (reg.body as RegistryMessage).server_cert_domain_san,
      "inst-9",
    );
    // SIGHUP reloads the credentials (a forced reload logs even when unchanged).
    const fresh = await pki.writeInstance(`${dir}/creds`, {
      instanceId: "inst-9",
    });
    child.kill("SIGHUP");
    await new Promise((r) => setTimeout(r, 300));
    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0);
    const unreg = router.received.filter((r) => r.path === "/v1/unregister");
    assert.equal(unreg.length, 1);
    assert.deepEqual(unreg[0]!.body, reg.body);
    const log = await new Response(child.stderr).text();
    assert.match(log, /"event":"routes-unregistered"/);
    assert.match(log, /"event":"proxy-stopped"/);
    assert.match(log, /"event":"reload-requested"/);
    assert.match(
      log,
      new RegExp(`"event":"credentials-reloaded".*"serial":"${fresh.serial}"`),
    );
    assert.doesNotMatch(log, /tok"|BEGIN/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await router.server.shutdown();
    await app.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { startProxy } from "../../lib/proxy/mod.ts";
import { configDump } from "../../lib/proxy/_views.ts";
import { NatsRouteBus } from "../../lib/routes/mod.ts";
import type { RegistryMessage } from "../../lib/routes/mod.ts";
import { findNatsServer, startNatsServer } from "../_helpers/nats.ts";
import {
  connectTls,
  createTestPki,
  httpGet,
  memoryLogger,
  proxySection,
  startHttpApp,
  tempDir,
  waitFor,
} from "./_helpers.ts";

const pki = await createTestPki();

Deno.test("admin API serves /stats, /certs, /config_dump, /ready and /metrics on loopback", async () => {
  const dir = await tempDir();
  const cred = await pki.writeInstance(dir, { instanceId: "inst-1" });
  await Deno.writeTextFile(`${dir}/token`, "very-secret", { mode: 0o600 });
  const app = startHttpApp();
  const proxy = await startProxy(
    proxySection({
      admin_listen: "127.0.0.1:0",
      connect_timeout: "250ms", // the default, shown in the dump
      instances: [{
        credentials_dir: dir,
        mode: "tls",
        listeners: [{
          name: "web",
          listen: "127.0.0.1:0",
          app: `127.0.0.1:${app.port}`,
        }],
        register: {
          routes: ["a.example.com"],
          host: "10.0.0.5",
          routers: [{
            url: "http://user:pw@127.0.0.1:9",
            token_file: `${dir}/token`,
          }],
        },
      }],
    }),
    {
      watch: false,
      logger: memoryLogger().logger,
      sinks: () => [],
    },
  );
  const base = `http://127.0.0.1:${proxy.adminPort}`;
  try {
    const conn = await connectTls(proxy.port("inst-1"), "inst-1", pki.rootPem);
    assert.equal(await httpGet(conn, "/"), "hello /");

    const stats = await (await fetch(`${base}/stats`)).json();
    const l = stats.instances[0].listeners[0];
    assert.equal(l.name, "web");
    assert.equal(l.active, 1);
    assert.equal(l.total, 1);
    assert.ok(l.bytes_client_to_app > 0);
    assert.equal(l.handshake_failures["unknown-ca"], 0);
    conn.close();

    const certs = await (await fetch(`${base}/certs`)).json();
    assert.equal(certs[0].serial, cred.serial);
    assert.equal(certs[0].identity.instanceId, "inst-1");
    assert.ok(Date.parse(certs[0].not_after) > Date.now());

    const dumpText = await (await fetch(`${base}/config_dump`)).text();
    const dump = JSON.parse(dumpText);
    assert.equal(
      dump.instances[0].listeners[0].bound_port,
      proxy.port("inst-1"),
    );
    assert.equal(dump.connect_timeout, "250ms");
    assert.doesNotMatch(dumpText, /very-secret|BEGIN|:pw@/);

    assert.equal((await fetch(`${base}/ready`)).status, 200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const notAfter = Math.floor(Date.parse(certs[0].not_after) / 1000);
    assert.match(
      metrics,
      new RegExp(
        `sigil_proxy_cert_not_after_timestamp_seconds\\{instance="inst-1"\\} ${notAfter}`,
      ),
    );
    assert.match(
      metrics,
      /sigil_proxy_connections_total\{instance="inst-1",listener="web"\} 1/,
    );
    assert.equal((await fetch(`${base}/nope`)).status, 404);

    await app.shutdown();
    const notReady = await fetch(`${base}/ready`);
    assert.equal(notReady.status, 503);
    const body = await notReady.json();
    assert.equal(body.checks[0].app_accepts, false);
  } finally {
    await proxy.close({ drainTimeoutMs: 0 });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "startProxy() registers over NATS (router.register) and unregisters on close",
  ignore: findNatsServer() === undefined,
  async fn() {
    await using nats = await startNatsServer();
    const got: Array<[string, RegistryMessage]> = [];
    const router = await NatsRouteBus.connect({
      servers: [nats.url],
      onRegister: (m) => got.push(["register", m]),
      onUnregister: (m) => got.push(["unregister", m]),
      logger: memoryLogger().logger,
    });
    await router.whenConnected();
    const dir = await tempDir();
    await pki.writeInstance(dir, { instanceId: "inst-n" });
    const proxy = await startProxy(
      proxySection({
        admin_listen: "127.0.0.1:0",
        instances: [{
          credentials_dir: dir,
          mode: "tls",
          listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:9" }],
          register: {
            routes: ["n.example.com"],
            host: "10.0.0.5",
            nats: { servers: [nats.url] },
          },
        }],
      }),
      { watch: false, logger: memoryLogger().logger },
    );
    try {
      await waitFor(() => got.length >= 1, 5000, "router.register over NATS");
      assert.equal(got[0]![0], "register");
      assert.equal(got[0]![1].server_cert_domain_san, "inst-n");
      assert.equal(got[0]![1].tls_port, proxy.port("inst-n"));
    } finally {
      await proxy.close({ drainTimeoutMs: 0 });
      await Deno.remove(dir, { recursive: true });
    }
    await waitFor(() => got.some(([a]) => a === "unregister"), 5000);
    await router.close();
  },
});

Deno.test({
  name:
    "startProxy() re-registers at once when a router announces router.start on NATS",
  ignore: findNatsServer() === undefined,
  async fn() {
    await using nats = await startNatsServer();
    const dir = await tempDir();
    await pki.writeInstance(dir, { instanceId: "inst-s" });
    const proxy = await startProxy(
      proxySection({
        admin_listen: "127.0.0.1:0",
        instances: [{
          credentials_dir: dir,
          mode: "tls",
          listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:9" }],
          register: {
            routes: ["s.example.com"],
            host: "10.0.0.6",
            // The heartbeat alone would not send again within this test.
            interval: "10m",
            nats: { servers: [nats.url] },
          },
        }],
      }),
      { watch: false, logger: memoryLogger().logger },
    );
    const got: RegistryMessage[] = [];
    // A router that starts after the proxy: it publishes router.start on
    // connect, and misses the proxy's first registration.
    const router = await NatsRouteBus.connect({
      servers: [nats.url],
      minimumRegisterIntervalInSeconds: 1,
      onRegister: (m) => got.push(m),
      onUnregister: () => {},
      logger: memoryLogger().logger,
    });
    try {
      await waitFor(
        () => got.length >= 1,
        5000,
        "registration after router.start",
      );
      assert.equal(got[0]!.server_cert_domain_san, "inst-s");
      assert.deepEqual(got[0]!.uris, ["s.example.com"]);
    } finally {
      await router.close();
      await proxy.close({ drainTimeoutMs: 0 });
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("configDump() redacts credentials in router and NATS URLs, with or without a scheme", () => {
  const section = proxySection({
    instances: [{
      credentials_dir: "/var/lib/sigil/instances/a",
      mode: "tls",
      listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:8080" }],
      register: {
        routes: ["a.example.com"],
        host: "10.0.0.5",
        routers: [{ url: "https://api-user:api-pass@router.internal:8082" }],
        nats: {
          servers: [
            "nats://nuser:npass@nats-1.internal:4222",
            "suser:spass@nats-2.internal:4222",
          ],
        },
      },
    }],
  });
  const text = JSON.stringify(configDump(section, []));
  for (const secret of ["api-pass", "npass", "spass"]) {
    assert.ok(!text.includes(secret), `${secret} in ${text}`);
  }
  assert.match(text, /router\.internal:8082/);
  assert.match(text, /nats-2\.internal:4222/);
});

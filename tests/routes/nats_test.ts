import assert from "node:assert/strict";
import { connect as natsConnect } from "@nats-io/transport-node";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import {
  NatsRouteBus,
  type NatsRouteBusOptions,
  redactUrl,
  type RegistryMessage,
  RouteBusError,
  type RouterStartMessage,
} from "../../lib/routes/mod.ts";
import { startNatsServer } from "../_helpers/nats.ts";
import { freePort } from "../_helpers/ports.ts";
import { createTestPki } from "../_helpers/pki.ts";

const quiet = createLogger("routes", { sink: () => {} });

function msg(i: number, extra: Partial<RegistryMessage> = {}): RegistryMessage {
  return {
    host: "10.0.0.5",
    tls_port: 61000 + i,
    uris: [`app${i}.example.com`],
    private_instance_id: `inst-${i}`,
    server_cert_domain_san: `inst-${i}`,
    ...extra,
  };
}

async function waitFor(
  what: string,
  pred: () => boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Recorder {
  registered: RegistryMessage[];
  unregistered: RegistryMessage[];
  invalid: { reason: string; subject: string; message: string }[];
  status: boolean[];
  options: Pick<
    NatsRouteBusOptions,
    "onRegister" | "onUnregister" | "onInvalid" | "onStatus"
  >;
}

function recorder(): Recorder {
  const r: Recorder = {
    registered: [],
    unregistered: [],
    invalid: [],
    status: [],
    options: {},
  };
  r.options = {
    onRegister: (m) => r.registered.push(m),
    onUnregister: (m) => r.unregistered.push(m),
    onInvalid: (reason, err, subject) =>
      r.invalid.push({ reason, subject, message: err.message }),
    onStatus: (c) => r.status.push(c),
  };
  return r;
}

Deno.test("NatsRouteBus delivers registrations from a proxy-side bus to two router-side buses", async () => {
  await using nats = await startNatsServer();
  const a = recorder();
  const b = recorder();
  const routerA = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
    ...a.options,
  });
  const routerB = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
    ...b.options,
  });
  const proxy = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
  });
  try {
    assert.ok(routerA.connected && routerB.connected && proxy.connected);
    assert.deepEqual(a.status, [true]);
    for (let i = 0; i < 5; i++) await proxy.register(msg(i));
    await proxy.unregister(msg(2));
    await waitFor(
      "both routers to receive every message",
      () =>
        a.registered.length === 5 && b.registered.length === 5 &&
        a.unregistered.length === 1 && b.unregistered.length === 1,
    );
    assert.deepEqual(a.registered, [0, 1, 2, 3, 4].map((i) => msg(i)));
    assert.deepEqual(b.registered, a.registered);
    assert.deepEqual(a.unregistered, [msg(2)]);
    assert.deepEqual(a.invalid, []);
    assert.deepEqual(routerA.stats, { received: 6, rejected: 0 });
  } finally {
    await proxy.close();
    await routerA.close();
    await routerB.close();
  }
});

Deno.test("NatsRouteBus answers router.greet with its router.start payload", async () => {
  await using nats = await startNatsServer();
  const router = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
    routerId: "0-router-a",
    hosts: ["10.1.0.1"],
    minimumRegisterIntervalInSeconds: 15,
    pruneThresholdInSeconds: 90,
    onRegister: () => {},
  });
  const proxy = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
  });
  // An independent client (not our bus) sees the same answer on the wire.
  const raw = await natsConnect({ servers: [nats.url] });
  try {
    const expected: RouterStartMessage = {
      id: "0-router-a",
      hosts: ["10.1.0.1"],
      minimumRegisterIntervalInSeconds: 15,
      pruneThresholdInSeconds: 90,
    };
    assert.deepEqual(await proxy.greet(2000), expected);
    const reply = await raw.request("router.greet", "", { timeout: 2000 });
    assert.deepEqual(
      JSON.parse(new TextDecoder().decode(reply.data)),
      expected,
    );
    assert.deepEqual(router.startMessage, expected);
  } finally {
    await raw.close();
    await proxy.close();
    await router.close();
  }
});

Deno.test("NatsRouteBus.greet() returns undefined when no router answers", async () => {
  await using nats = await startNatsServer();
  const proxy = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
  });
  try {
    assert.equal(await proxy.greet(500), undefined);
  } finally {
    await proxy.close();
  }
});

Deno.test("NatsRouteBus republishes router.start after nats-server restarts, and subscriptions still deliver", async () => {
  await using nats = await startNatsServer();
  const r = recorder();
  const router = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
    routerId: "0-restart",
    reconnectMaxDelayMs: 500,
    ...r.options,
  });
  const proxy = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
    reconnectMaxDelayMs: 500,
  });
  // Watch router.start on the wire. The router's own connection also
  // subscribes (NATS echoes a client's publishes to its own subscriptions), so
  // the restart check cannot race against another client's reconnect.
  const starts: RouterStartMessage[] = [];
  router.onRouterStart((m) => starts.push(m), { jitter: false });
  try {
    await proxy.register(msg(1));
    await waitFor("first registration", () => r.registered.length === 1);
    // The start published at connect came before our subscription existed;
    // from here on every router.start must be seen.
    const before = starts.length;

    await nats.stop();
    await waitFor("disconnect status", () => r.status.at(-1) === false);
    await waitFor("proxy to see the disconnect", () => !proxy.connected);
    assert.equal(router.connected, false);
    await assert.rejects(
      proxy.register(msg(2)),
      (err: unknown) =>
        err instanceof RouteBusError &&
        err.code === "ERR_ROUTES_NATS_UNAVAILABLE",
    );

    await nats.start();
    await router.whenConnected(10_000);
    await proxy.whenConnected(10_000);
    assert.deepEqual(r.status, [true, false, true]);
    await waitFor("router.start after reconnect", () => starts.length > before);
    assert.equal(starts.at(-1)?.id, "0-restart");

    await proxy.register(msg(3));
    await waitFor(
      "registration after reconnect",
      () => r.registered.length === 2,
    );
    assert.deepEqual(r.registered.at(-1), msg(3));
  } finally {
    await proxy.close();
    await router.close();
  }
});

Deno.test("NatsRouteBus sends malformed messages to onInvalid and keeps delivering", async () => {
  await using nats = await startNatsServer();
  const r = recorder();
  const lines: string[] = [];
  const router = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: createLogger("routes", { sink: (l) => lines.push(l) }),
    ...r.options,
  });
  const raw = await natsConnect({ servers: [nats.url] });
  try {
    const bad = [
      "{not json",
      JSON.stringify({ port: 8080, uris: ["a.example.com"] }),
      JSON.stringify({
        host: "10.0.0.1",
        port: 99999,
        uris: ["a.example.com"],
      }),
      JSON.stringify({ host: "10.0.0.1", port: 8080, uris: "a.example.com" }),
      JSON.stringify({
        host: "10.0.0.1",
        port: 8080,
        uris: ["a.example.com"],
        route_service_url: "http://not-https.example.com",
      }),
    ];
    for (const b of bad) raw.publish("router.register", b);
    raw.publish("router.unregister", "[]");
    raw.publish("router.register", JSON.stringify(msg(7)));
    await raw.flush();
    await waitFor(
      "all messages",
      () => r.invalid.length === 6 && r.registered.length === 1,
    );
    assert.deepEqual(r.invalid.map((i) => i.reason), [
      "invalid-json",
      "invalid-message",
      "invalid-message",
      "invalid-message",
      "invalid-message",
      "invalid-message",
    ]);
    assert.equal(r.invalid.at(-1)?.subject, "router.unregister");
    assert.match(r.invalid[1]!.message, /host/);
    assert.match(r.invalid[2]!.message, /port/);
    assert.match(r.invalid[3]!.message, /uris/);
    assert.match(r.invalid[4]!.message, /route_service_url/);
    assert.deepEqual(r.registered, [msg(7)]);
    assert.deepEqual(router.stats, { received: 1, rejected: 6 });
    // Rejections are logged, rate-limited: the first one right away.
    const logged = lines.map((l) => JSON.parse(l)).filter((l) =>
      l.event === "registry-message-invalid"
    );
    assert.equal(logged.length, 1);
    assert.equal(logged[0].reason, "invalid-json");
  } finally {
    await raw.close();
    await router.close();
  }
});

Deno.test("NatsRouteBus.connect() returns while NATS is down and connects when it comes up", async () => {
  const port = freePort();
  const lines: string[] = [];
  const r = recorder();
  const router = await NatsRouteBus.connect({
    servers: [`nats://sigil:hunter2-secret@127.0.0.1:${port}`],
    logger: createLogger("routes", { sink: (l) => lines.push(l) }),
    reconnectMaxDelayMs: 300,
    ...r.options,
  });
  const starts: RouterStartMessage[] = [];
  router.onRouterStart((m) => starts.push(m), { jitter: false });
  try {
    assert.equal(router.connected, false);
    assert.deepEqual(r.status, [false]);
    await assert.rejects(
      router.register(msg(1)),
      (e: unknown) =>
        e instanceof RouteBusError && e.code === "ERR_ROUTES_NATS_UNAVAILABLE",
    );
    await using _nats = await startNatsServer({ port });
    await router.whenConnected(10_000);
    assert.deepEqual(r.status, [false, true]);
    await waitFor("router.start at first connect", () => starts.length === 1);
    assert.ok(lines.some((l) => l.includes("nats-connect-failed")));
    assert.ok(lines.every((l) => !l.includes("hunter2")), "password logged");
  } finally {
    await router.close();
  }
  await assert.rejects(
    router.register(msg(1)),
    (e: unknown) =>
      e instanceof RouteBusError && e.code === "ERR_ROUTES_BUS_CLOSED",
  );
});

Deno.test("NatsRouteBus.onRouterStart() delays the callback by jitter below 20% of the interval", async () => {
  await using nats = await startNatsServer();
  const clock = new FakeClock();
  const proxy = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
    clock,
    random: () => 0.5,
  });
  const seen: RouterStartMessage[] = [];
  proxy.onRouterStart((m) => seen.push(m));
  await proxy.greet(100); // round-trip so the subscription is on the server
  const router = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quiet,
    routerId: "0-jitter",
    minimumRegisterIntervalInSeconds: 10,
    onRegister: () => {},
  });
  try {
    await waitFor("jitter timer", () => clock.pending === 1);
    // 0.5 × 0.2 × 10 s = 1 s
    await clock.tick(999);
    assert.equal(seen.length, 0);
    await clock.tick(1);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.id, "0-jitter");
  } finally {
    await router.close();
    await proxy.close();
  }
});

Deno.test("redactUrl() hides credentials in server URLs", () => {
  assert.equal(
    redactUrl("nats://user:pw@10.0.0.1:4222"),
    "nats://***@10.0.0.1:4222",
  );
  assert.equal(redactUrl("nats://10.0.0.1:4222"), "nats://10.0.0.1:4222");
  assert.equal(redactUrl("10.0.0.1:4222"), "nats://10.0.0.1:4222");
});

Deno.test("NatsRouteBus connects to a TLS nats-server, trusting tls.ca", async () => {
  const pki = await createTestPki();
  const server = await pki.issueClient({
    commonName: "nats",
    ips: ["127.0.0.1"],
    dnsNames: ["localhost"],
  });
  const dir = await Deno.makeTempDir({ prefix: "sigil-nats-tls-" });
  try {
    await Deno.writeTextFile(`${dir}/server.crt`, server.certPem);
    await Deno.writeTextFile(`${dir}/server.key`, server.keyPem);
    await using nats = await startNatsServer({
      args: [
        "--tls",
        "--tlscert",
        `${dir}/server.crt`,
        "--tlskey",
        `${dir}/server.key`,
      ],
    });
    const url = `tls://127.0.0.1:${nats.port}`;
    const r = recorder();
    const router = await NatsRouteBus.connect({
      servers: [url],
      logger: quiet,
      tls: { ca: pki.rootPem },
      ...r.options,
    });
    const proxy = await NatsRouteBus.connect({
      servers: [url],
      logger: quiet,
      tls: { ca: pki.rootPem },
    });
    // Without the CA the handshake must fail (nothing is trusted by default).
    const untrusting = await NatsRouteBus.connect({
      servers: [url],
      logger: quiet,
      tls: {},
    });
    try {
      assert.equal(router.connected, true);
      assert.equal(untrusting.connected, false);
      await proxy.register(msg(1));
      await waitFor("registration over TLS", () => r.registered.length === 1);
    } finally {
      await untrusting.close();
      await proxy.close();
      await router.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NatsRouteBus says which permission to grant when the server refuses a subscription", async () => {
  const dir = await Deno.makeTempDir();
  const conf = `${dir}/nats.conf`;
  await Deno.writeTextFile(
    conf,
    [
      "authorization {",
      "  users = [{ user: router, password: pw,",
      '    permissions: { subscribe: { deny: ["router.register"] } } }]',
      "}",
    ].join("\n"),
  );
  await using nats = await startNatsServer({ args: ["-c", conf] });
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("routes", {
    sink: (l) => lines.push(JSON.parse(l)),
  });
  const url = nats.url.replace("nats://", "nats://router:pw@");
  const bus = await NatsRouteBus.connect({
    servers: [url],
    logger,
    onRegister: () => {},
  });
  try {
    await waitFor(
      "nats-subscription-failed",
      () => lines.some((l) => l.event === "nats-subscription-failed"),
    );
    const line = lines.find((l) => l.event === "nats-subscription-failed")!;
    assert.equal(line.subject, "router.register");
    assert.match(String(line.hint), /grant this user subscribe permission/);
    assert.ok(!JSON.stringify(lines).includes("pw@"), "no password in logs");
  } finally {
    await bus.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NatsRouteBus refuses a registration over maxMessageBytes before parsing it, and never logs its payload", async () => {
  await using nats = await startNatsServer();
  const r = recorder();
  const lines: string[] = [];
  const router = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: createLogger("routes", { sink: (l) => lines.push(l) }),
    maxMessageBytes: 1024,
    ...r.options,
  });
  const raw = await natsConnect({ servers: [nats.url] });
  try {
    const big = JSON.stringify({ ...msg(1), pad: "SECRETPAD".repeat(200) });
    raw.publish("router.register", big);
    raw.publish("router.register", JSON.stringify(msg(2)));
    await raw.flush();
    await waitFor(
      "both",
      () => r.invalid.length === 1 && r.registered.length === 1,
    );
    assert.equal(r.invalid[0]!.reason, "too-large");
    assert.match(r.invalid[0]!.message, /over the 1024-byte limit/);
    assert.ok(lines.every((l) => !l.includes("SECRETPAD")));
  } finally {
    await raw.close();
    await router.close();
  }
});

// The router's timing on its injected clock: failure cooldowns, the request
// timeout, the probe's handshake timeout and idle connections all advance
// with FakeClock.tick(), never with sleeps. Real sockets throughout; the
// only real-time waits are for I/O conditions, with generous timeouts.
import assert from "node:assert/strict";
import { freePort } from "../_helpers/ports.ts";
import { dialBackend } from "../../lib/router/_transport.ts";
import type { BackendDialer } from "../../lib/router/_transport.ts";
import {
  assertRequestTimedOut,
  countingRelay,
  instanceBackend,
  rawBackend,
  request,
  startBackend,
  startTestRouter,
  until,
} from "./_helpers.ts";

function failures(logs: Record<string, unknown>[]): number {
  return logs.filter((l) => l.event === "backend-failed").length;
}

Deno.test("router skips a failed endpoint for failure_cooldown on its clock, then tries it again", async () => {
  const t = await startTestRouter({ backends: { failure_cooldown: "30s" } }, {
    fakeClock: true,
  });
  const clock = t.clock!;
  const good = await startBackend({ name: "good" });
  try {
    for (const port of [freePort(), good.port]) {
      t.router.apply("register", {
        host: "127.0.0.1",
        port,
        uris: ["cool.example.com"],
      });
    }
    for (let i = 0; i < 4; i++) {
      assert.equal((await request(t.url, "cool.example.com")).status, 200);
    }
    assert.equal(failures(t.logs), 1, "the refused endpoint failed once");
    await clock.tick(29_000);
    for (let i = 0; i < 4; i++) {
      assert.equal((await request(t.url, "cool.example.com")).status, 200);
    }
    assert.equal(failures(t.logs), 1, "still cooling down at 29 s");
    await clock.tick(2_000);
    for (let i = 0; i < 4; i++) {
      assert.equal((await request(t.url, "cool.example.com")).status, 200);
    }
    assert.equal(failures(t.logs), 2, "tried (and failed) again after 30 s");
  } finally {
    await good.close();
    await t.close();
  }
});

Deno.test("router answers 504 once request_timeout passes on its clock", async () => {
  const t = await startTestRouter({ request_timeout: "120s" }, {
    fakeClock: true,
  });
  const clock = t.clock!;
  const be = await rawBackend();
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: be.port,
      uris: ["slow.example.com"],
    });
    let done = false;
    const pending = request(t.url, "slow.example.com").finally(() => {
      done = true;
    });
    await until(() => be.accepted() === 1, "the backend connection");
    await clock.tick(60_000);
    assert.equal(done, false, "not timed out at 60 s");
    await clock.tick(61_000);
    const res = await pending;
    assertRequestTimedOut(res);
  } finally {
    await be.close();
    await t.close();
  }
});

Deno.test("router prunes a stale TLS endpoint whose probe never completes its handshake, at tls_handshake_timeout on its clock", async () => {
  const t = await startTestRouter({
    backends: { tls_handshake_timeout: "60s" },
  }, { fakeClock: true });
  const clock = t.clock!;
  const mute = await rawBackend();
  const alive = await instanceBackend(t, "alive", "inst-alive");
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: mute.port,
      uris: ["probe.example.com"],
      server_cert_domain_san: "inst-mute",
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: alive.port,
      uris: ["probe.example.com"],
      server_cert_domain_san: "inst-alive",
    });
    // Past the stale threshold, the next prune cycle probes both.
    await clock.tick(150_000);
    await until(() => mute.accepted() === 1, "the probe's connection");
    await clock.tick(59_000);
    assert.equal(t.router.registry.endpointCount, 2, "not pruned at 59 s");
    await clock.tick(1_000);
    await until(
      () => t.router.registry.endpointCount === 1,
      "the mute endpoint pruned",
    );
    const probe = t.logs.find((l) => l.event === "probe-failed");
    assert.equal(probe?.code, "ERR_ROUTER_HANDSHAKE_TIMEOUT");
    assert.deepEqual(
      t.router.registry.lookup("probe.example.com", "/")!.endpoints.map((e) =>
        e.san
      ),
      ["inst-alive"],
    );
  } finally {
    await alive.close();
    await mute.close();
    await t.close();
  }
});

Deno.test("router closes idle keep-alive connections after idle_timeout on its clock", async () => {
  const good = await startBackend({ name: "good" });
  // Counts the router's connections to the backend.
  const watch = await countingRelay(good.port);
  const { port, counts } = watch;
  const t = await startTestRouter({ backends: { idle_timeout: "90s" } }, {
    fakeClock: true,
  });
  try {
    t.router.apply("register", { host: "127.0.0.1", port, uris: ["i.test"] });
    assert.equal((await request(t.url, "i.test")).status, 200);
    assert.equal((await request(t.url, "i.test")).status, 200);
    assert.equal(counts.opened, 1, "keep-alive reuses the connection");
    await t.clock!.tick(60_000);
    assert.equal(counts.open, 1, "still open at 60 s");
    // Idle times are stamped by the sweeps: closed within two sweep intervals.
    await t.clock!.tick(90_000);
    await until(() => counts.open === 0, "the idle connection closed");
  } finally {
    await t.close();
    await watch.close();
    await good.close();
  }
});

Deno.test("router dials every backend connection through its injected dialer (requests, probes)", async () => {
  const dials: Array<{ port: number; secure: boolean }> = [];
  const dial: BackendDialer = (options, secure) => {
    dials.push({ port: Number(options.port), secure });
    return dialBackend(options, secure);
  };
  const t = await startTestRouter({}, {
    fakeClock: true,
    deps: { dialBackend: dial },
  });
  const plain = await startBackend({ name: "plain" });
  const tls = await instanceBackend(t, "tls", "inst-tls");
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: plain.port,
      uris: ["plain.example.com"],
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: tls.port,
      uris: ["tls.example.com"],
      server_cert_domain_san: "inst-tls",
    });
    assert.equal((await request(t.url, "plain.example.com")).status, 200);
    assert.equal((await request(t.url, "tls.example.com")).status, 200);
    assert.deepEqual(dials, [
      { port: plain.port, secure: false },
      { port: tls.port, secure: true },
    ]);
    await t.clock!.tick(150_000);
    await t.router.pruneNow();
    assert.ok(
      dials.filter((d) => d.port === tls.port).length >= 2,
      "the probe dialed through it too",
    );
  } finally {
    await plain.close();
    await tls.close();
    await t.close();
  }
});

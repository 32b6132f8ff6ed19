/**
 * Drill (issue 20): backend keep-alive connections never outlive the
 * certificate that authenticated them. With 1-minute certificates, a pooled
 * connection (idle timeout 90 s) kept carrying requests after its backend's
 * certificate expired and after the port was handed to another instance, so
 * route integrity held only at handshake time. Now a connection carries no
 * request past its peer certificate's notAfter (nor past
 * `backends.max_conn_age`): the next request dials, and verifies the
 * certificate the backend serves then. The router's clock is a FakeClock; the
 * certificates are real 1-minute ones.
 */
import assert from "node:assert/strict";
import https from "node:https";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseCertificate } from "../../lib/pki/mod.ts";
import type { TestCredential } from "../_helpers/pki.ts";
import { request, startTestRouter } from "./_helpers.ts";

const ROUTE = "aged.test";
const MINUTE = 60_000;

interface Seen {
  port: number;
  serial: string;
}

/** A TLS backend whose certificate can be swapped (as the proxy reloads). */
async function rotatingBackend(first: TestCredential) {
  const seen: Seen[] = [];
  let serial = parseCertificate(first.certPem).serial;
  const server = https.createServer(
    { cert: first.certPem, key: first.keyPem },
    (req, res) => {
      seen.push({ port: req.socket.remotePort ?? 0, serial });
      res.end("ok");
    },
  );
  const sockets = new Set<{ destroy(): void }>();
  server.on("secureConnection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    rotate(next: TestCredential) {
      server.setSecureContext({ cert: next.certPem, key: next.keyPem });
      serial = parseCertificate(next.certPem).serial;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

Deno.test("a pooled backend connection carries no request past its certificate's notAfter: the router dials again and verifies the rotated certificate", async () => {
  const t = await startTestRouter({}, { fakeClock: true });
  const clock = t.clock!;
  const issue = (instanceId: string) =>
    t.pki.issueInstance({ instanceId }, {
      validityMs: MINUTE,
      now: clock.now(),
    });
  const a = await issue("inst-aged");
  const b = await rotatingBackend(a);
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: b.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-aged",
    });
    for (let i = 0; i < 3; i++) {
      assert.equal((await request(t.url, ROUTE)).text, "ok");
    }
    const first = b.seen[0]!.port;
    assert.deepEqual(new Set(b.seen.map((s) => s.port)), new Set([first]));
    // The backend rotates (as its rotator does at 2/3 of the lifetime); the
    // open connection is still backed by a valid certificate and is reused.
    const next = await issue("inst-aged");
    b.rotate(next);
    await clock.tick(40_000);
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    assert.equal(b.seen.at(-1)!.port, first, "reused while A is valid");
    // Past A's notAfter: a new connection, which saw the new certificate.
    const notAfterA = parseCertificate(a.certPem).notAfter.getTime();
    await clock.tick(notAfterA - clock.now() + 1_000);
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    const after = b.seen.at(-1)!;
    assert.notEqual(after.port, first, "a new connection after notAfter");
    assert.equal(after.serial, parseCertificate(next.certPem).serial);
    // The port now serves another instance: past the current certificate's
    // notAfter the router's fresh handshake catches it (before this change
    // the pooled connection kept reaching it).
    b.rotate(
      await t.pki.issueInstance({ instanceId: "inst-other" }, {
        validityMs: 10 * MINUTE,
        now: clock.now(),
      }),
    );
    const requestsBefore = b.seen.length;
    const notAfterB = parseCertificate(next.certPem).notAfter.getTime();
    await clock.tick(notAfterB - clock.now() + 1_000);
    const res = await request(t.url, ROUTE);
    assert.notEqual(res.status, 200, res.text);
    assert.equal(b.seen.length, requestsBefore, "the other instance got none");
    assert.ok(
      t.logs.some((l) =>
        JSON.stringify(l).includes("ERR_TLS_CERT_ALTNAME_INVALID") ||
        JSON.stringify(l).includes("does not name")
      ),
      "the identity check refused it",
    );
  } finally {
    await b.close();
    await t.close();
  }
});

Deno.test("backends.max_conn_age ends a keep-alive connection after that age, also for plain backends", async () => {
  const t = await startTestRouter({ backends: { max_conn_age: "10s" } }, {
    fakeClock: true,
  });
  const ports: number[] = [];
  const server = http.createServer((req, res) => {
    ports.push(req.socket.remotePort ?? 0);
    res.end("ok");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      port: (server.address() as AddressInfo).port,
      uris: [ROUTE],
    });
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    await t.clock!.tick(5_000);
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    assert.equal(ports[1], ports[0], "reused before max_conn_age");
    await t.clock!.tick(6_000);
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    assert.notEqual(ports[2], ports[0], "a new connection after max_conn_age");
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await t.close();
  }
});

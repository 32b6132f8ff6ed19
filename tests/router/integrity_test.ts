import assert from "node:assert/strict";
import { createTestPki } from "../_helpers/pki.ts";
import {
  header,
  instanceBackend,
  request,
  startBackend,
  startTestRouter,
  testPki,
} from "./_helpers.ts";

const ROUTE = "hello.example.com";

Deno.test("router never sends a request to an endpoint that proves a different instance", async () => {
  const t = await startTestRouter();
  // Registered as instance X, but the address serves instance Y's certificate.
  const y = await instanceBackend(t, "Y", "inst-y");
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: y.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-x",
      private_instance_id: "inst-x",
    });
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 503);
    assert.match(
      header(res, "x-cf-routererror"),
      /^endpoint_failure \(ERR_TLS_CERT_ALTNAME_INVALID\)$/,
    );
    assert.doesNotMatch(res.text, /"backend"/);
    assert.equal(y.seen.length, 0, "Y must not receive the request");
    assert.equal(t.router.registry.lookup(ROUTE, "/"), undefined, "pruned");
    assert.match(t.router.metrics(), /sigil_router_backend_invalid_id_total 1/);
    assert.match(
      t.router.metrics(),
      /sigil_router_routes_pruned_total\{reason="identity"\} 1/,
    );
  } finally {
    await y.close();
    await t.close();
  }
});

Deno.test("router retries on a good endpoint after an identity mismatch and prunes the bad one", async () => {
  const t = await startTestRouter();
  const y = await instanceBackend(t, "Y", "inst-y");
  const z = await instanceBackend(t, "Z", "inst-z");
  try {
    // Bad first so round-robin tries it first.
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: y.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-x",
      private_instance_id: "inst-x",
    });
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: z.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-z",
      private_instance_id: "inst-z",
      app: "app-z",
      private_instance_index: "2",
    });
    for (let i = 0; i < 4; i++) {
      const res = await request(t.url, ROUTE, { path: `/r${i}` });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.text).backend, "Z");
    }
    assert.equal(y.seen.length, 0);
    assert.equal(z.seen.length, 4);
    assert.equal(z.seen[0]!.headers["x-cf-instanceid"], "inst-z");
    assert.equal(z.seen[0]!.headers["x-cf-applicationid"], "app-z");
    assert.equal(z.seen[0]!.headers["x-cf-instanceindex"], "2");
    const pool = t.router.registry.lookup(ROUTE, "/");
    assert.deepEqual(pool?.endpoints.map((e) => e.instanceId), ["inst-z"]);
    const failed = t.access.filter((a) => a.failed_attempts === 1);
    assert.ok(failed.length >= 1, "access log records the failed attempt");
  } finally {
    await y.close();
    await z.close();
    await t.close();
  }
});

Deno.test("router refuses backends with an untrusted certificate (526) and prunes them", async () => {
  const t = await startTestRouter();
  const other = await createTestPki("other.sigil");
  const rogue = await startBackend({
    name: "rogue",
    cred: await other.issueInstance({ instanceId: "inst-a" }),
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: rogue.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-a",
    });
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 526);
    assert.match(header(res, "x-cf-routererror"), /^endpoint_failure/);
    assert.equal(rogue.seen.length, 0);
    assert.equal(t.router.registry.endpointCount, 0);
  } finally {
    await rogue.close();
    await t.close();
  }
});

Deno.test("router presents its client certificate in mtls mode", async () => {
  const pki = await testPki();
  const client = await pki.issueClient({ dnsNames: ["router.sigil.internal"] });
  const t = await startTestRouter({ backends: { mode: "mtls" } }, {
    clientCred: client,
  });
  const strict = await startBackend({
    name: "strict",
    cred: await pki.issueInstance({ instanceId: "inst-s" }),
    clientCa: pki.rootPem + pki.intermediatePem,
  });
  const noCert = await startTestRouter();
  try {
    const msg = {
      host: "127.0.0.1",
      tls_port: strict.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-s",
    };
    t.router.apply("register", msg);
    const ok = await request(t.url, ROUTE);
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.text).backend, "strict");

    noCert.router.apply("register", msg);
    const refused = await request(noCert.url, ROUTE);
    // gorouter's RemoteFailedCertCheck (proxy/fails/basic_classifiers.go) →
    // 496 (proxy/round_tripper/error_handler.go); retriable and prunable.
    assert.equal(refused.status, 496);
    assert.equal(refused.text, "496 SSL Certificate Required\n");
    assert.equal(strict.seen.length, 1);
    assert.equal(noCert.router.registry.endpointCount, 0);
  } finally {
    await strict.close();
    await t.close();
    await noCert.close();
  }
});

Deno.test("router reuses keep-alive connections to a TLS backend", async () => {
  const t = await startTestRouter();
  const cred = await t.pki.issueInstance({ instanceId: "inst-k" });
  const ports = new Set<number>();
  const k = await startBackend({
    name: "K",
    cred,
    handler: (req, res) => {
      ports.add(req.socket.remotePort ?? 0);
      res.end("ok");
      return true;
    },
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: k.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-k",
    });
    for (let i = 0; i < 5; i++) {
      const res = await request(t.url, ROUTE);
      assert.equal(res.text, "ok");
    }
    assert.equal(ports.size, 1);
  } finally {
    await k.close();
    await t.close();
  }
});

Deno.test("router reload() picks up a rotated client certificate for new connections", async () => {
  const pki = await testPki();
  const first = await pki.issueClient({ dnsNames: ["router-1"] });
  const t = await startTestRouter({ backends: { mode: "mtls" } }, {
    clientCred: first,
  });
  const peers: string[] = [];
  const strict = await startBackend({
    name: "strict",
    cred: await pki.issueInstance({ instanceId: "inst-r" }),
    clientCa: pki.rootPem + pki.intermediatePem,
    handler: (req, res) => {
      const sock = req.socket as unknown as {
        getPeerCertificate(): { subject?: { CN?: string } };
      };
      peers.push(sock.getPeerCertificate().subject?.CN ?? "");
      res.end("ok");
      return true;
    },
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: strict.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-r",
    });
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    const second = await pki.issueClient({ dnsNames: ["router-2"] });
    await Deno.writeTextFile(`${t.dir}/client.crt`, second.certPem);
    await Deno.writeTextFile(`${t.dir}/client.key`, second.keyPem, {
      mode: 0o600,
    });
    await t.router.reload();
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    assert.deepEqual(peers, ["router-1", "router-2"]);
    // A key that does not match, or a CA file with no certificate, is refused
    // by reload(), naming the file; the router keeps what it had.
    const third = await pki.issueClient({ dnsNames: ["router-3"] });
    await Deno.writeTextFile(`${t.dir}/client.crt`, third.certPem);
    await assert.rejects(
      t.router.reload(),
      /Cannot use backend client key ".*client\.key": it does not match/,
    );
    await Deno.writeTextFile(`${t.dir}/client.crt`, second.certPem);
    await Deno.writeTextFile(`${t.dir}/backend-ca.pem`, "not a certificate\n");
    await assert.rejects(
      t.router.reload(),
      /Cannot use backend CA ".*backend-ca\.pem": it holds no PEM certificate/,
    );
    assert.equal((await request(t.url, ROUTE)).text, "ok");
    assert.equal(t.router.registry.endpointCount, 1, "nothing was pruned");
  } finally {
    await strict.close();
    await t.close();
  }
});

// gorouter dials a TLS endpoint registered without server_cert_domain_san
// with ServerName "" (proxy/utils/tls_config.go), so Go's crypto/tls checks
// the certificate against the dialed IP: an IP SAN, never the CN.
Deno.test("a TLS endpoint registered without server_cert_domain_san must prove its address (IP SAN)", async () => {
  const t = await startTestRouter();
  const byIp = await startBackend({
    name: "by-ip",
    cred: await t.pki.issueClient({ commonName: "x", ips: ["127.0.0.1"] }),
  });
  // Diego's instance certificates carry the container IP; this one does not.
  const byName = await startBackend({
    name: "by-name",
    cred: await t.pki.issueInstance({ instanceId: "inst-n", ips: [] }),
  });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: byIp.port,
      uris: ["ip.example.com"],
    });
    const ok = await request(t.url, "ip.example.com");
    assert.equal(ok.status, 200, ok.text);
    assert.equal(JSON.parse(ok.text).backend, "by-ip");
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: byName.port,
      uris: ["name.example.com"],
    });
    const refused = await request(t.url, "name.example.com");
    assert.equal(refused.status, 503);
    assert.equal(byName.seen.length, 0, "no request without a proven identity");
    assert.equal(t.router.registry.lookup("name.example.com", "/"), undefined);
  } finally {
    await byIp.close();
    await byName.close();
    await t.close();
  }
});

Deno.test("router's 526 for a backend whose certificate expired names the expiry (Deno's node:tls says only UNABLE_TO_VERIFY_LEAF_SIGNATURE)", async () => {
  const t = await startTestRouter();
  const day = 86_400_000;
  const expired = await t.pki.issueInstance({ instanceId: "inst-e" }, {
    now: Date.now() - 3 * day,
    validityMs: day,
  });
  const stale = await startBackend({ name: "stale", cred: expired });
  try {
    t.router.apply("register", {
      host: "127.0.0.1",
      tls_port: stale.port,
      uris: [ROUTE],
      server_cert_domain_san: "inst-e",
    });
    const res = await request(t.url, ROUTE);
    assert.equal(res.status, 526);
    assert.equal(
      header(res, "x-cf-routererror"),
      "endpoint_failure (CERT_HAS_EXPIRED)",
    );
    assert.match(res.text, /certificate expired/);
    assert.equal(stale.seen.length, 0, "no request byte reached it");
    assert.equal(t.router.registry.endpointCount, 0);
    const failed = t.logs.find((l) => l.event === "backend-failed");
    assert.equal(failed?.code, "CERT_HAS_EXPIRED");
    assert.match(
      String(failed?.error),
      new RegExp(`${expired.serial.toLowerCase()} expired at `),
    );
  } finally {
    await stale.close();
    await t.close();
  }
});

import assert from "node:assert/strict";
import { CrlWatcher } from "../../lib/revocation/mod.ts";
import { createCrl } from "../../lib/pki/mod.ts";
import { createLogger, MetricsRegistry } from "../../lib/observe/mod.ts";
import { createTestPki } from "../_helpers/pki.ts";

/** A CRL server over a real loopback socket whose answer the test sets. */
function crlServer() {
  let answer: () => Response = () => new Response("not yet", { status: 503 });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => answer(),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/v1/crl.pem`,
    set(f: () => Response) {
      answer = f;
    },
    close: () => server.shutdown(),
  };
}

Deno.test("CrlWatcher keeps the last good CRL when a reload fails (error status, garbage, bad signature, older CRL) and logs and counts each failure", async () => {
  const pki = await createTestPki();
  const other = await createTestPki(); // same issuer name, another key
  const a = await pki.issueInstance({ instanceId: "i-a" });
  const b = await pki.issueInstance({ instanceId: "i-b" });
  const srv = crlServer();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", {
    sink: (l) => lines.push(JSON.parse(l)),
  });
  const metrics = new MetricsRegistry("sigil_test");
  const watcher = new CrlWatcher({
    url: srv.url,
    caBundle: pki.rootPem + pki.intermediatePem,
    refreshMs: 3_600_000, // refreshed by hand below
    holder: "test",
    logger,
    metrics,
  });
  const changes: number[] = [];
  watcher.onChange((s) => changes.push(s.size));
  try {
    // The CA is down at start: nothing is revoked, start() still resolves.
    await watcher.start();
    assert.equal(watcher.isRevoked(a.serial), false);
    assert.match(String(watcher.state().lastError), /answered 503/);

    const now = Date.now();
    const first = await createCrl(pki.intermediate, [
      { serial: a.serial, revokedAt: new Date(now) },
    ], { number: 1, now: now - 10_000 });
    srv.set(() => new Response(first));
    assert.equal(await watcher.refresh(), true);
    assert.equal(watcher.isRevoked(a.serial), true);
    assert.equal(watcher.isRevoked(a.serial.toUpperCase()), true);
    assert.equal(watcher.isRevoked(b.serial), false);
    assert.deepEqual(changes, [1]);
    assert.equal(watcher.state().lastError, undefined);

    const failures: Array<[() => Response, RegExp]> = [
      [() => new Response("oops", { status: 500 }), /answered 500/],
      [
        () =>
          new Response(
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
          ),
        /not a PEM or DER X\.509 CRL/,
      ],
    ];
    const forged = await createCrl(other.intermediate, [], {
      number: 2,
      now,
    });
    failures.push([
      () => new Response(forged),
      /signature does not verify/,
    ]);
    const older = await createCrl(pki.intermediate, [], {
      number: 0,
      now: now - 60_000,
    });
    failures.push([() => new Response(older), /is older/]);
    for (const [answer, why] of failures) {
      srv.set(answer);
      assert.equal(await watcher.refresh(), false);
      assert.equal(watcher.isRevoked(a.serial), true, `kept after ${why}`);
      assert.match(String(watcher.state().lastError), why);
      const logged = lines.at(-1)!;
      assert.equal(logged.event, "crl-fetch-failed");
      assert.match(String(logged.reason), why);
      assert.match(String(logged.keeping), /\(1 serials\)/);
    }
    assert.match(
      metrics.render(),
      /sigil_test_crl_fetch_failures_total 5\b/, // 1 at start + 4
    );
    assert.match(metrics.render(), /sigil_test_crl_revoked_serials 1\b/);

    // A newer CRL replaces it.
    const second = await createCrl(pki.intermediate, [
      { serial: b.serial, revokedAt: new Date(now) },
    ], { number: 3, now });
    srv.set(() => new Response(second));
    assert.equal(await watcher.refresh(), true);
    assert.equal(watcher.isRevoked(a.serial), false);
    assert.equal(watcher.isRevoked(b.serial), true);
    assert.deepEqual(changes, [1, 1]);
    assert.equal(lines.at(-1)!.event, "crl-loaded");
  } finally {
    watcher.close();
    await srv.close();
  }
});

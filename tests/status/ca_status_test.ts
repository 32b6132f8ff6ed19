/**
 * The CA's `/status.json` in-process (`app.request()`): issuers with their
 * time left on the injected clock, the newest ledger rows first, refusals
 * apart, and nothing secret in the body.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CertificateAuthority,
  createCaApp,
  initCa,
  Ledger,
} from "../../lib/ca/mod.ts";
import { parseCertificate } from "../../lib/pki/mod.ts";
import type { CaStatus } from "../../lib/status/mod.ts";
import { FakeClock } from "../_helpers/fake_clock.ts";

Deno.test("ca /status.json: issuers on the CA clock, newest issuances and refusals first, no secret", async () => {
  const dir = await Deno.makeTempDir();
  const store = await initCa(join(dir, "ca"), { trustDomain: "prod.example" });
  const ledger = Ledger.open(join(dir, "ledger.sqlite"));
  const clock = new FakeClock(Date.parse("2030-01-01T00:00:00Z"));
  const ca = new CertificateAuthority(store, ledger, { clock });
  const app = createCaApp(ca);
  try {
    const row = (n: number, result: "issued" | "refused") => ({
      time: new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString(),
      result,
      serial: result === "issued" ? `0${n}` : null,
      instance_id: `i-${n}`,
      app: "app",
      space: "s",
      org: "o",
      ips: "[]",
      not_after: result === "issued" ? "2030-01-02T00:00:00.000Z" : null,
      caller: "cell",
      reason: result === "refused" ? "ERR_CA_FORBIDDEN: no" : null,
    });
    for (let n = 0; n < 60; n++) ledger.record(row(n, "issued"));
    ledger.record(row(60, "refused"));
    ledger.record(row(61, "issued"));
    ledger.record(row(62, "refused"));
    const res = await app.request("/status.json");
    assert.equal(res.status, 200);
    const text = await res.text();
    const s = JSON.parse(text) as CaStatus;
    assert.equal(s.role, "ca");
    assert.equal(s.time, "2030-01-01T00:00:00.000Z");
    assert.equal(s.trust_domain, "prod.example");
    const root = parseCertificate(store.rootPem);
    const inter = parseCertificate(store.intermediatePem);
    assert.deepEqual(s.issuers.map((c) => c.serial), [
      root.serial,
      inter.serial,
    ]);
    assert.equal(
      s.issuers[0]!.time_left_ms,
      root.notAfter.getTime() - clock.now(),
    );
    // The newest 50 issuances, newest first; refusals in their own list.
    assert.equal(s.issuances.length, 50);
    assert.deepEqual(
      s.issuances.slice(0, 3).map((r) => r.instance_id),
      ["i-61", "i-59", "i-58"],
    );
    assert.ok(s.issuances.every((r) => r.result === "issued"));
    assert.deepEqual(s.refusals.map((r) => r.instance_id), ["i-62", "i-60"]);
    assert.equal(s.refusals[0]!.reason, "ERR_CA_FORBIDDEN: no");
    assert.equal(s.revocations, null);
    assert.doesNotMatch(text, /BEGIN|PRIVATE|eyJ/);
    // The page itself, with its strict headers.
    const page = await app.request("/status");
    assert.match(
      page.headers.get("content-security-policy") ?? "",
      /default-src 'none'/,
    );
    assert.ok((await page.text()).includes('data-instance="i-62"'));
    // The clock moves, the time left follows.
    await clock.tick(60_000);
    const later = await (await app.request("/status.json")).json() as CaStatus;
    assert.equal(
      later.issuers[0]!.time_left_ms,
      s.issuers[0]!.time_left_ms - 60_000,
    );
  } finally {
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

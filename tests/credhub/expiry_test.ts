/**
 * `sigil credhub` exports its TLS certificate's expiry and warns before it
 * (issue 15, "nothing expires unwatched"), as the router and proxy do for
 * theirs (lib/observe/expiry.ts).
 * @module
 */
import assert from "node:assert/strict";
import { httpsRequest, prepareTestCredhub } from "../_helpers/credhub.ts";
import { startCredhub } from "../../lib/credhub/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { parseCertificate } from "../../lib/pki/mod.ts";

Deno.test("credhub: /metrics has the TLS certificate's notAfter; within expiry_warning it logs credential-expiring once, without PEM", async () => {
  const f = await prepareTestCredhub();
  const lines: string[] = [];
  const logger = createLogger("credhub", { sink: (l) => lines.push(l) });
  // Nearly all of the lifetime counts as "expiring": the warning is due now.
  const ch = await startCredhub(
    { ...f.config, expiry_warning: { cert_fraction: 0.999999 } },
    { logger },
  );
  try {
    const leaf = parseCertificate(
      await Deno.readTextFile(f.config.tls_cert_file),
    );
    const r = await httpsRequest(ch.url, f.pki.rootPem, "GET", "/metrics");
    assert.equal(r.status, 200);
    assert.match(
      r.text,
      new RegExp(
        `^sigil_credhub_tls_cert_not_after_timestamp_seconds ${
          Math.floor(leaf.notAfter.getTime() / 1000)
        }$`,
        "m",
      ),
    );
    const warned = lines.map((l) => JSON.parse(l)).filter((e) =>
      e.event === "credential-expiring"
    );
    assert.equal(warned.length, 1, lines.join("\n"));
    assert.equal(warned[0].credential, "credhub-tls-cert");
    assert.equal(warned[0].serial, leaf.serial);
    assert.ok(!lines.some((l) => l.includes("BEGIN")));
  } finally {
    await ch.close();
    await Deno.remove(f.dir, { recursive: true });
  }
});

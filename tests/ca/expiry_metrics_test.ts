/**
 * The CA exports its root's and intermediates' expiry on /metrics and warns
 * (`ca-certificate-expiring`) within `ca.expiry_warning` (issue 15).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { initCa, renewIntermediate, startCa } from "../../lib/ca/mod.ts";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { parseCertificate } from "../../lib/pki/mod.ts";
import { FakeClock } from "../_helpers/fake_clock.ts";

const DAY = 86_400_000;

function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("ca", {
    level: "debug",
    sink: (l) => lines.push(JSON.parse(l)),
  });
  return { logger, lines };
}

const seconds = (pem: string) =>
  Math.floor(parseCertificate(pem).notAfter.getTime() / 1000);

Deno.test("sigil ca serve: /metrics carries the root's, the current and the previous intermediates' notAfter; ca-certificate-expiring is logged within expiry_warning, once a day", async () => {
  const dir = await Deno.makeTempDir();
  const clock = new FakeClock(Date.now());
  const { logger, lines } = memoryLogger();
  try {
    const caDir = join(dir, "ca");
    await initCa(caDir, {
      intermediateValidityMs: 30 * DAY,
      rootKeyOut: join(dir, "root.key"),
    });
    const old = await Deno.readTextFile(join(caDir, "intermediate.crt"));
    await renewIntermediate(caDir, {
      rootKeyPem: await Deno.readTextFile(join(dir, "root.key")),
      validityMs: 10 * DAY,
    });
    const config = parseConfig(
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n  expiry_warning: 168h\n`,
    );
    const ca = await startCa(config.ca!, { logger, clock });
    const rootPem = await Deno.readTextFile(join(caDir, "root.crt"));
    const current = await Deno.readTextFile(join(caDir, "intermediate.crt"));
    const http = Deno.createHttpClient({ caCerts: [rootPem] });
    try {
      const metrics = await (await fetch(`${ca.url}/metrics`, {
        client: http,
      })).text();
      assert.match(
        metrics,
        new RegExp(
          `^sigil_ca_root_not_after_timestamp_seconds ${seconds(rootPem)}$`,
          "m",
        ),
      );
      assert.match(
        metrics,
        new RegExp(
          `^sigil_ca_intermediate_not_after_timestamp_seconds ${
            seconds(current)
          }$`,
          "m",
        ),
      );
      assert.match(
        metrics,
        new RegExp(
          `^sigil_ca_previous_intermediate_not_after_timestamp_seconds\\{serial="${
            parseCertificate(old).serial
          }"\\} ${seconds(old)}$`,
          "m",
        ),
      );
      assert.match(
        metrics,
        /^# TYPE sigil_ca_previous_intermediate_not_after_timestamp_seconds gauge$/m,
      );
      assert.equal(
        await (await fetch(`${ca.url}/v1/intermediates.pem`, { client: http }))
          .text(),
        current + old,
      );
      const roles = async () =>
        ((await (await fetch(`${ca.url}/status.json`, { client: http }))
          .json()) as { issuers: Array<{ role: string; serial: string }> })
          .issuers.map((i) => `${i.role} ${i.serial}`);
      assert.deepEqual(await roles(), [
        `root ${parseCertificate(rootPem).serial}`,
        `intermediate (signs instances) ${parseCertificate(current).serial}`,
        `previous intermediate (its leaves still valid) ${
          parseCertificate(old).serial
        }`,
      ]);
      const expiring = () =>
        lines.filter((l) => l.event === "ca-certificate-expiring");
      // 10 days left, threshold 7 days: nothing yet.
      assert.equal(expiring().length, 0);
      // Three days and an hour on, the hourly check warns about the
      // intermediate (not the 10-year root, not the previous intermediate).
      await clock.tick(3 * DAY + 3_600_000);
      const w = expiring();
      assert.equal(w.length, 1, JSON.stringify(lines.slice(-3)));
      assert.equal(w[0]!.certificate, "intermediate");
      assert.equal(w[0]!.level, "warn");
      assert.equal(w[0]!.serial, parseCertificate(current).serial);
      assert.ok((w[0]!.hours_left as number) <= 168);
      assert.match(String(w[0]!.hint), /sigil ca intermediate renew/);
      // Hourly checks, but one warning a day.
      await clock.tick(DAY);
      assert.equal(expiring().length, 2);
      // A previous intermediate past its notAfter leaves /metrics...
      await clock.tick(29 * DAY);
      const later = await (await fetch(`${ca.url}/metrics`, {
        client: http,
      })).text();
      assert.doesNotMatch(later, /previous_intermediate_not_after.*\{serial=/);
      // ...and /v1/intermediates.pem.
      assert.equal(
        await (await fetch(`${ca.url}/v1/intermediates.pem`, { client: http }))
          .text(),
        current,
      );
      assert.equal((await roles()).length, 2);
    } finally {
      http.close();
      await ca.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ca.expiry_warning must be a positive duration; the error names the key", () => {
  assert.throws(
    () => parseConfig(`ca:\n  dir: /x\n  expiry_warning: 0s\n`),
    (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /ca\.expiry_warning/);
      return true;
    },
  );
  assert.equal(
    parseConfig(`ca:\n  dir: /x\n`).ca!.expiry_warning,
    720 * 3_600_000,
  );
});

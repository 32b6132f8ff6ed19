/**
 * A proxy's status page (admin listener) in a real headless browser
 * (Debian's chromium via puppeteer-core), loaded from a running `sigil dev`.
 * Traffic and a refused handshake come from curl, an independent client.
 * The page follows Envoy's admin page in spirit (envoyproxy/envoy
 * source/server/admin: stats, certs, listeners on one loopback listener).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { formatBytes } from "../../lib/status/mod.ts";
import { runCommand } from "../_helpers/proc.ts";
import { checkPhoneDark, launchBrowser, startDevProcess } from "./_dev.ts";

const COUNTDOWN = /^\d+(d \d+h|h \d\dm|m \d\ds|s)$/;

Deno.test("proxy /status in chromium: instance, certificate countdown, listener traffic and refusals, registration per router", async () => {
  const dev = await startDevProcess();
  const { dir, info } = dev;
  const browser = await launchBrowser().catch(async (err) => {
    await dev.close();
    throw err;
  });
  try {
    const other = info.instances.find((i) => i.app === "other")!;
    const routerApi = `http://${info.router.api}`;
    // Traffic through the router to the one "other" instance.
    const viaRouter = () =>
      runCommand("curl", [
        "-sS",
        "--max-time",
        "30",
        "-H",
        "Host: other.localhost",
        `http://${info.router.http}/json`,
      ]);
    const r1 = await viaRouter();
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stdout, new RegExp(other.instance_id));
    // A client without a certificate is refused by the strict-mTLS proxy.
    const refused = await runCommand("curl", [
      "-sS",
      "--max-time",
      "30",
      "--cacert",
      info.ca.bundle,
      "--resolve",
      `${other.instance_id}:${other.tls_port}:127.0.0.1`,
      `https://${other.instance_id}:${other.tls_port}/`,
    ]);
    assert.notEqual(refused.code, 0, "no client certificate, no answer");

    const page = await browser.newPage();
    page.setDefaultTimeout(60_000);
    await page.setViewport({ width: 1280, height: 900 });
    for (const i of info.instances) {
      const res = await page.goto(`http://${i.admin}/status`, {
        waitUntil: "load",
        timeout: 60_000,
      });
      assert.equal(res?.status(), 200);
      assert.match(res?.headers()["content-security-policy"] ?? "", /'self'/);
      const ids = await page.$$eval(
        "[data-instance]",
        (els) => els.map((e) => e.getAttribute("data-instance")),
      );
      assert.deepEqual(ids, [i.instance_id]);
      // The served certificate: its serial as /certs reports it, a countdown.
      const certs = await (await fetch(`http://${i.admin}/certs`)).json();
      const serial = await page.$eval(
        ".certs tr[data-serial]",
        (e) => e.getAttribute("data-serial"),
      );
      assert.equal(serial, certs[0].serial);
      const identity = await page.$eval(
        ".certs td[data-label=Identity]",
        (e) => e.textContent,
      );
      assert.equal(identity, i.instance_id);
      const left = await page.$eval(".certs .countdown", (e) => e.textContent);
      assert.match(left ?? "", COUNTDOWN);
      // The listener with its bound port.
      const listen = await page.$eval(
        "tr[data-listener=http] td[data-label=Listen]",
        (e) => e.textContent,
      );
      assert.equal(listen, `127.0.0.1:${i.tls_port}`);
      // Registered with the router.
      await page.waitForSelector(
        `.registrations tr[data-target="${routerApi}"][data-state=registered]`,
      );
    }

    // The "other" proxy counts the routed connection, its bytes, the refusal.
    await page.goto(`http://${other.admin}/status`, { waitUntil: "load" });
    const cell = (label: string) =>
      page.$eval(
        `tr[data-listener=http] td[data-label="${label}"]`,
        (e) => e.textContent ?? "",
      );
    assert.ok(Number(await cell("Total")) >= 1, await cell("Total"));
    assert.match(await cell("Client → app"), /^[1-9][\d.]* (B|KiB)$/);
    assert.match(await cell("App → client"), /^[1-9][\d.]* (B|KiB)$/);
    const refusals = await cell("Refusals");
    assert.match(refusals, /no-cert: \d+|handshake-error: \d+/, refusals);

    // The page refreshes itself: more traffic shows up without a reload.
    // (The router keeps its connection, so the bytes grow, not the total.)
    const before = await cell("Client → app");
    let expected = before;
    for (let n = 0; n < 20 && expected === before; n++) {
      const r = await viaRouter();
      assert.equal(r.code, 0, r.stderr);
      const stats = await (await fetch(`http://${other.admin}/stats`)).json();
      expected = formatBytes(
        stats.instances[0].listeners[0].bytes_client_to_app,
      );
    }
    assert.notEqual(expected, before);
    await page.waitForFunction(
      `document.querySelector(
        'tr[data-listener=http] td[data-label="Client → app"]')?.textContent === ${
        JSON.stringify(expected)
      }`,
      { timeout: 60_000, polling: 500 },
    );

    // Phone width, dark mode: one readable column, and a screenshot.
    await checkPhoneDark(page, join(dir, "proxy-status.png"));
  } finally {
    await browser.close();
    await dev.close();
  }
});

/**
 * The CA's status page in a real headless browser (Debian's chromium via
 * puppeteer-core), loaded from a running `sigil dev`. openssl and curl are
 * the independent readers of the issuers and the ledger's inputs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCommand } from "../_helpers/proc.ts";
import { checkPhoneDark, launchBrowser, startDevProcess } from "./_dev.ts";

const COUNTDOWN = /^\d+(d \d+h|h \d\dm|m \d\ds|s)$/;

async function opensslSerial(file: string): Promise<string> {
  const r = await runCommand("openssl", [
    "x509",
    "-noout",
    "-serial",
    "-in",
    file,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().replace(/^serial=/, "").toLowerCase().replace(
    /^0+/,
    "",
  );
}

Deno.test("ca /status in chromium: issuers with countdowns, recent issuances, refusals with attacker text as text", async () => {
  const dev = await startDevProcess();
  const { dir, info } = dev;
  const browser = await launchBrowser({ insecure: true }).catch(async (e) => {
    await dev.close();
    throw e;
  });
  try {
    // An anonymous sign request with markup in its instance id is refused
    // and ledgered (the id is attacker-supplied text).
    const refuse = (instance: string) =>
      runCommand("curl", [
        "-sS",
        "--max-time",
        "30",
        "--cacert",
        info.ca.bundle,
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        JSON.stringify({ instance_id: instance }),
        `${info.ca.url}/v1/sign`,
      ]);
    const evil = "<script>window.__pwned=1</script>";
    const r = await refuse(evil);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ERR_CA_UNAUTHENTICATED/);
    // The JSON is served over the CA's verified TLS, too.
    const json = await runCommand("curl", [
      "-sS",
      "--max-time",
      "30",
      "--cacert",
      info.ca.bundle,
      `${info.ca.url}/status.json`,
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).role, "ca");

    const page = await browser.newPage();
    page.setDefaultTimeout(60_000);
    await page.setViewport({ width: 1280, height: 900 });
    const res = await page.goto(`${info.ca.url}/status`, {
      waitUntil: "load",
      timeout: 60_000,
    });
    assert.equal(res?.status(), 200);
    const text = await page.$eval("main", (m) => m.textContent ?? "");
    assert.ok(text.includes("sigil.dev"), "trust domain shown");
    // Issuers: root and intermediate, serials as openssl reads them.
    const issuerSerials = await page.$$eval(
      ".certs tr[data-serial]",
      (els) => els.map((e) => e.getAttribute("data-serial")),
    );
    const root = await opensslSerial(join(info.ca.dir, "root.crt"));
    const inter = await opensslSerial(join(info.ca.dir, "intermediate.crt"));
    assert.deepEqual(
      issuerSerials.map((s) => (s ?? "").replace(/^0+/, "")),
      [root, inter],
    );
    const left = await page.$$eval(
      ".certs .countdown",
      (els) => els.map((e) => e.textContent ?? ""),
    );
    assert.equal(left.length, 2);
    for (const l of left) assert.match(l, COUNTDOWN);
    // Recent issuances: every dev instance's certificate, by serial.
    const issued = await page.$$eval(
      ".ledger tr[data-serial]",
      (els) =>
        els.filter((e) => e.querySelector(".state-issued")).map((e) => [
          e.getAttribute("data-serial"),
          e.getAttribute("data-instance"),
        ]),
    );
    for (const i of info.instances) {
      const serial = await opensslSerial(join(i.dir, "instance.crt"));
      assert.ok(
        issued.some(([s, id]) =>
          (s ?? "").replace(/^0+/, "") === serial && id === i.instance_id
        ),
        `issuance of ${i.instance_id} (${serial}) listed`,
      );
    }
    // The refusal, its id as text, nothing ran.
    const refusals = await page.$$eval(
      ".ledger tr",
      (els) =>
        els.filter((e) => e.querySelector(".state-refused")).map((e) =>
          e.getAttribute("data-instance")
        ),
    );
    assert.ok(refusals.includes(evil), String(refusals));
    assert.ok(text.includes(evil));
    assert.match(text, /ERR_CA_UNAUTHENTICATED/);
    assert.equal(await page.evaluate("typeof window.__pwned"), "undefined");
    assert.equal(await page.$$eval("main script", (e) => e.length), 0);
    // No secret on the page: no PEM, no token.
    const html = await page.content();
    assert.doesNotMatch(html, /BEGIN|PRIVATE KEY|eyJ/);
    // The page refreshes itself: a new refusal appears without a reload.
    const late = `late-${crypto.randomUUID()}`;
    await refuse(late);
    await page.waitForSelector(`.ledger tr[data-instance="${late}"]`, {
      timeout: 60_000,
    });

    // Phone width, dark mode: one readable column, and a screenshot.
    await checkPhoneDark(page, join(dir, "ca-status.png"));
  } finally {
    await browser.close();
    await dev.close();
  }
});

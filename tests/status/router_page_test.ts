/**
 * The router's status page in a real headless browser (Debian's chromium via
 * puppeteer-core), loaded from a running `sigil dev --misroute`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkPhoneDark, launchBrowser, startDevProcess } from "./_dev.ts";

Deno.test("router /status in chromium: routes, endpoints, misroute as a prune event, attacker text stays text", async () => {
  const dev = await startDevProcess(["--misroute"]);
  const { dir, info } = dev;
  const browser = await launchBrowser();
  try {
    await dev.waitForOutput(/Stale endpoint pruned/, 90_000);
    assert.match(dev.out(), /Stale endpoint pruned from the route table: yes/);
    const api = `http://${info.router.api}`;
    const token = (await Deno.readTextFile(info.router.token_file)).trim();
    const register = (msg: unknown) =>
      fetch(`${api}/v1/register`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify(msg),
      });
    // A route name with markup is refused at registration...
    const refused = await register({
      host: "127.0.0.1",
      port: 9,
      uris: ["<script>window.__pwned=1</script>.example.com"],
    });
    assert.equal(refused.status, 400);
    await refused.body?.cancel();
    // ...and markup in the fields that are free text renders as text.
    const ok = await register({
      host: "127.0.0.1",
      port: 9,
      uris: ["evil.example.com"],
      app: "<img src=x onerror=window.__pwned=2>",
      private_instance_id: '"><script>window.__pwned=3</script>',
      tags: { t: "<script>window.__pwned=4</script>" },
    });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();

    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const res = await page.goto(`${api}/status`, { waitUntil: "load" });
    assert.equal(res?.status(), 200);
    const routes = await page.$$eval(
      "[data-route]",
      (els) => els.map((e) => e.getAttribute("data-route")),
    );
    assert.ok(routes.includes("hello.localhost"), String(routes));
    assert.ok(routes.includes("other.localhost"), String(routes));
    assert.ok(routes.includes("evil.example.com"), String(routes));
    // Every hello instance from dev.json is listed with its address.
    const text = await page.$eval("main", (m) => m.textContent ?? "");
    for (const i of info.instances) {
      assert.ok(text.includes(i.instance_id), `page lists ${i.instance_id}`);
    }
    // The misroute is a prune event with reason "identity".
    const reasons = await page.$$eval(
      "tr.event",
      (els) => els.map((e) => e.getAttribute("data-reason")),
    );
    assert.ok(reasons.includes("identity"), String(reasons));
    assert.match(text, /misroute: the backend proved another instance id/);
    // The markup arrived as text and nothing ran.
    assert.ok(text.includes("<img src=x onerror=window.__pwned=2>"));
    assert.ok(text.includes('"><script>window.__pwned=3</script>'));
    assert.equal(await page.evaluate("typeof window.__pwned"), "undefined");
    assert.equal(
      await page.$$eval("main script, main img", (e) => e.length),
      0,
    );
    // The certificate countdown is live: the page script rewrites it.
    const first = await page.$eval(".certs .countdown", (e) => e.textContent);
    assert.match(first ?? "", /^\d+(d \d+h|h \d\dm|m \d\ds|s)$/);
    await page.evaluate(
      'document.querySelector(".certs .countdown").textContent = "x"',
    );
    await page.waitForFunction(
      `/^\\d/.test(document.querySelector(".certs .countdown").textContent)`,
      { timeout: 30_000 },
    );
    // The page refreshes itself: a new route appears without a reload.
    const late = await register({
      host: "127.0.0.1",
      port: 9,
      uris: ["late.example.com"],
    });
    await late.body?.cancel();
    await page.waitForSelector('[data-route="late.example.com"]', {
      timeout: 30_000,
    });
    // Filter by host.
    await page.goto(`${api}/status?host=other`, { waitUntil: "load" });
    const filtered = await page.$$eval(
      "[data-route]",
      (els) => els.map((e) => e.getAttribute("data-route")),
    );
    assert.deepEqual(filtered, ["other.localhost"]);
    // Phone width, dark mode: one readable column, and a screenshot.
    await page.goto(`${api}/status`, { waitUntil: "load" });
    await checkPhoneDark(page, join(dir, "router-status.png"));
  } finally {
    await browser.close();
    await dev.close();
  }
});

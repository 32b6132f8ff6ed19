/**
 * Every role's `/metrics` passes `promtool check metrics` (the Prometheus
 * naming linter) and carries the series every exporter is expected to have.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { MetricsRegistry } from "../../lib/observe/mod.ts";
import { RotatorMetrics } from "../../lib/rotator/_metrics.ts";
import { MAIN, ROOT } from "../_helpers/proc.ts";
import { promtool } from "../_helpers/promtool.ts";

/** Asserts the conventions promtool does not check itself. */
async function assertConventional(role: string, text: string): Promise<void> {
  const lint = await promtool(["check", "metrics"], text);
  assert.equal(
    lint.code,
    0,
    `${role}: promtool check metrics:\n${lint.output}`,
  );
  assert.equal(lint.output.trim(), "", `${role}: ${lint.output}`);
  assert.match(text, /^sigil_build_info\{version="[^"]+",deno="[^"]+"\} 1$/m);
  for (
    const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_start_time_seconds",
      "process_open_fds",
    ]
  ) {
    assert.match(text, new RegExp(`^${name} \\d`, "m"), `${role}: ${name}`);
  }
  assert.doesNotMatch(text, /serial="/, `${role}: no per-rotation label`);
  for (const [, name] of text.matchAll(/^# TYPE (\S+) gauge$/gm)) {
    assert.doesNotMatch(name!, /_total$/, `${role}: gauge ${name}`);
    if (/not_after/.test(name!)) {
      assert.match(name!, /_not_after_timestamp_seconds$/, `${role}: ${name}`);
    }
  }
  // Counters have a series from the first scrape (rate() and alerts need it).
  const counters = [...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) =>
    m[1]!
  );
  for (const name of counters) {
    if (
      /registry_messages_total|handshake_failures_total|reloads_total|registrations_total/
        .test(name)
    ) continue;
    assert.match(
      text,
      new RegExp(`^${name}(\\{[^}]*\\})? \\d`, "m"),
      `${role}: counter ${name} has a series before its first event`,
    );
  }
}

Deno.test("sigil dev: CA, router and every proxy /metrics pass promtool check metrics; each proxy admin is printed", async () => {
  const dir = await Deno.makeTempDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "dev", "--port", "0", "--dir", dir],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let out = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const deadline = Date.now() + 60_000;
    while (!out.includes("Press Ctrl-C to stop.")) {
      assert.ok(Date.now() < deadline, `sigil dev did not start:\n${out}`);
      const r = await reader.read();
      if (r.done) assert.fail(`sigil dev exited:\n${out}\n${await stderr}`);
      out += r.value;
    }
    const info = JSON.parse(await Deno.readTextFile(join(dir, "dev.json")));
    for (const i of info.instances) {
      assert.ok(
        out.includes(`admin http://${i.admin}`),
        `the summary prints ${i.instance_id}'s admin address:\n${out}`,
      );
    }
    const client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(info.ca.bundle)],
    });
    const scrape = async (url: string) => {
      const res = await fetch(url, { client });
      assert.equal(res.status, 200, url);
      return await res.text();
    };
    const router = await scrape(`http://${info.router.api}/metrics`);
    await assertConventional("router", router);
    assert.match(router, /^sigil_router_routes \d+$/m);
    assert.match(
      router,
      /^sigil_router_routes_pruned_total\{reason="stale"\} 0$/m,
    );
    const ca = await scrape(`${info.ca.url}/metrics`);
    await assertConventional("ca", ca);
    assert.match(
      ca,
      /^sigil_ca_intermediate_not_after_timestamp_seconds \d+$/m,
    );
    assert.match(ca, /^sigil_ca_root_not_after_timestamp_seconds \d+$/m);
    for (const i of info.instances) {
      const proxy = await scrape(`http://${i.admin}/metrics`);
      await assertConventional(`proxy ${i.instance_id}`, proxy);
      assert.match(
        proxy,
        new RegExp(
          `^sigil_proxy_cert_not_after_timestamp_seconds\\{instance="${i.instance_id}"\\} \\d+$`,
          "m",
        ),
      );
    }
    client.close();
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reader.cancel().catch(() => {});
    await stderr;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("rotator metrics pass promtool check metrics, counters at 0 before the first renewal", async () => {
  const m = new RotatorMetrics(
    new FakeClock(0),
    new MetricsRegistry("sigil_rotator"),
  );
  m.cert("inst-1", 86_400_000);
  m.nextRenewal("inst-1", 3_600_000);
  const text = m.registry.render();
  await assertConventional("rotator", text);
  assert.match(
    text,
    /^sigil_rotator_renewal_failures_total\{instance="inst-1"\} 0$/m,
  );
});

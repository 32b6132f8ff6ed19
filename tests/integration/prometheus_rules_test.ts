/**
 * deploy/prometheus: the alert rules pass `promtool check rules` and their
 * unit tests (`promtool test rules`); every Grafana panel query is valid
 * PromQL and names only metrics Sigil exports.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "../_helpers/proc.ts";
import { promtool } from "../_helpers/promtool.ts";

const DIR = join(ROOT, "deploy", "prometheus");

Deno.test("deploy/prometheus alert rules pass promtool check rules and promtool test rules", async () => {
  const check = await promtool([
    "check",
    "rules",
    join(DIR, "sigil-alerts.yml"),
  ]);
  assert.equal(check.code, 0, check.output);
  assert.match(check.output, /SUCCESS: \d+ rules found/);
  const test = await promtool([
    "test",
    "rules",
    join(DIR, "sigil-alerts.test.yml"),
  ]);
  assert.equal(test.code, 0, test.output);
  const rules = await Deno.readTextFile(join(DIR, "sigil-alerts.yml"));
  for (
    const alert of [
      "SigilProxyCertExpiringSoon",
      "SigilTokenExpiringSoon",
      "SigilIntermediateExpiringSoon",
      "SigilRenewalFailing",
      "SigilRoutesPruned",
      "SigilRouter5xxRate",
    ]
  ) {
    assert.match(rules, new RegExp(`alert: ${alert}$`, "m"));
  }
});

Deno.test("deploy/prometheus Grafana dashboard: every panel query is valid PromQL on Sigil's metric names", async () => {
  const dash = JSON.parse(
    await Deno.readTextFile(join(DIR, "sigil-dashboard.json")),
  );
  const exprs: string[] = dash.panels.flatMap((
    p: { targets: { expr: string }[] },
  ) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 8);
  for (const e of exprs) {
    assert.match(e, /\b(sigil_(ca|proxy|router|rotator)_\w+|process_\w+)/);
  }
  // promtool parses each query as a recording rule.
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "panels.yml");
    const yaml = [
      "groups:",
      "  - name: panels",
      "    rules:",
      ...exprs.flatMap((e, i) => [
        `      - record: sigil:panel_${i}`,
        `        expr: ${JSON.stringify(e)}`,
      ]),
    ].join("\n") + "\n";
    await Deno.writeTextFile(file, yaml);
    const check = await promtool(["check", "rules", file]);
    assert.equal(check.code, 0, check.output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import {
  ConfigError,
  parseConfig,
  requireSection,
} from "../../lib/config/mod.ts";
import { formatDuration, parseDuration } from "../../lib/common/mod.ts";

Deno.test("parseConfig() applies defaults and parses durations and addresses", () => {
  const cfg = parseConfig(
    "ca:\n  dir: /var/lib/sigil/ca\n  listen: '[::1]:9443'\n  default_validity: 1h30m\n",
  );
  assert.equal(cfg.ca?.default_validity, 5_400_000);
  assert.deepEqual(cfg.ca?.listen, { hostname: "::1", port: 9443 });
  assert.equal(cfg.ca?.backdate, 60_000);
  assert.equal(cfg.ca?.max_body_bytes, 65536);
  assert.equal(cfg.rotator, undefined);
});

Deno.test("parseConfig() lists every problem with path and line", () => {
  assert.throws(
    () =>
      parseConfig(
        "ca:\n  dir: /x\n  dirr: /y\n  listen: 'host:99999'\n  backdate: soon\n",
        "f.yaml",
      ),
    (e: Error) => {
      assert.ok(e instanceof ConfigError);
      const byPath = Object.fromEntries(e.issues.map((i) => [i.path, i]));
      assert.equal(byPath["ca.dirr"]?.line, 3);
      assert.match(byPath["ca.dirr"]!.message, /unrecognized key/);
      assert.equal(byPath["ca.listen"]?.line, 4);
      assert.equal(byPath["ca.backdate"]?.line, 5);
      assert.match(e.message, /Invalid config "f\.yaml"/);
      return true;
    },
  );
  assert.throws(() => parseConfig("ca: {}\n"), /ca\.dir/);
  assert.throws(
    () => parseConfig("ca:\n  dir: /x\n  default_validity: 0s\n"),
    /ca\.default_validity: must be at least "1m"/,
  );
  assert.throws(
    () =>
      parseConfig(
        "ca:\n  dir: /x\n  default_validity: 48h\n  max_validity: 24h\n",
      ),
    /ca\.default_validity: must not be longer than max_validity/,
  );
  assert.throws(() => parseConfig("a: [1\n"), /invalid YAML[\s\S]*line/);
  assert.throws(
    () => parseConfig("ca:\n  dir: /a\nca:\n  dir: /b\n"),
    /invalid YAML/,
  );
});

Deno.test("requireSection() names the missing section and the command", () => {
  const cfg = parseConfig("");
  assert.throws(
    () => requireSection(cfg, "router", "sigil router"),
    /section "router" is missing; sigil router needs it/,
  );
});

Deno.test("parseDuration() and formatDuration() round-trip", () => {
  for (
    const [text, ms] of [
      ["24h", 86_400_000],
      ["90s", 90_000],
      ["1h30m", 5_400_000],
      ["250ms", 250],
      ["7d", 604_800_000],
      ["0", 0],
    ] as const
  ) {
    assert.equal(parseDuration(text), ms);
  }
  assert.equal(formatDuration(5_400_000), "1h30m");
  assert.equal(formatDuration(250), "250ms");
  for (const bad of ["", "h", "10", "1y", "-5s", "1h 30m"]) {
    assert.throws(() => parseDuration(bad), SyntaxError, bad);
  }
});

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

Deno.test("credhub.store: a SQLite path or a postgres:// URL, exactly one of database or store, no password in the URL", () => {
  const base =
    "credhub:\n  keys_dir: /k\n  tls_cert_file: /c\n  tls_key_file: /k\n  trusted_cas_file: /t\n  public_key_file: /p\n";
  const pg = parseConfig(
    base +
      "  store:\n    url: postgres://sigil@db.internal:5432/sigil\n    password_file: /etc/pw\n",
  ).credhub!;
  assert.equal(pg.store?.kind, "postgres");
  assert.equal(
    pg.store?.kind === "postgres" && pg.store.sslmode,
    "verify-full",
  );
  const file = parseConfig(base + "  store: /var/lib/ch.db\n").credhub!;
  assert.deepEqual(file.store, { kind: "sqlite", path: "/var/lib/ch.db" });
  const issue = (yaml: string) => {
    try {
      parseConfig(yaml, "f.yaml");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.issues.map((i) => `${i.path}: ${i.message}`).join("\n");
    }
    assert.fail("accepted");
  };
  assert.match(issue(base), /credhub\.store: set exactly one of database/);
  assert.match(
    issue(base + "  database: /d\n  store: /e\n"),
    /credhub\.store: set exactly one of database/,
  );
  const leak = issue(base + "  store: postgres://sigil:hunter2@db/sigil\n");
  assert.match(leak, /carries a password: remove it from the URL/);
  assert.ok(!leak.includes("hunter2"));
});

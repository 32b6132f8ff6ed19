import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("RotatorSection accepts the rotator section of config.example.yaml", async () => {
  const text = await Deno.readTextFile(`${ROOT}config.example.yaml`);
  const r = parseConfig(text, "config.example.yaml").rotator!;
  assert.deepEqual(r.renew_at, { kind: "fraction", fraction: 0.667 });
  assert.equal(r.key_mode, 0o600);
  assert.equal(r.cert_mode, 0o644);
  assert.equal(r.dir_mode, 0o700);
  assert.deepEqual(r.backoff, { initial: 1000, max: 300_000, jitter: 0.2 });
  assert.deepEqual(r.metrics_listen, { hostname: "127.0.0.1", port: 9102 });
  assert.equal(r.instances[0]!.reload_signal, "SIGHUP");
});

Deno.test("RotatorSection applies defaults and reads renew_at as a duration before expiry", () => {
  const r = parseConfig(
    "rotator:\n  ca_url: https://127.0.0.1:8443\n  ca_bundle: b.pem\n  token_file: t\n  renew_at: 8h\n",
  ).rotator!;
  assert.deepEqual(r.renew_at, {
    kind: "before-expiry",
    beforeExpiryMs: 8 * 3_600_000,
  });
  assert.equal(r.jitter, 0.1);
  assert.equal(r.key_type, "ec-p256");
  assert.equal(r.validity, undefined);
  assert.equal(r.metrics_listen, undefined);
  assert.deepEqual(r.instances, []);
});

Deno.test("RotatorSection rejects bad values with their paths", () => {
  const bad = [
    ["  renew_at: 2\n", /rotator.renew_at: invalid renew_at 2/],
    ["  renew_at: soon\n", /rotator.renew_at/],
    ['  key_mode: "999"\n', /rotator.key_mode/],
    [
      "  key_mode: 0600\n",
      /rotator.key_mode: write modes as a quoted octal string/,
    ],
    ["  jitter: 0.9\n", /rotator.jitter/],
    [
      "  reload_signal: SIGHUP\n",
      /rotator.pid_file: reload_signal and pid_file go together/,
    ],
    [
      "  instances:\n    - {instance_id: a, app: b, space: c, org: d, dir: /x}\n    - {instance_id: a, app: b, space: c, org: d, dir: /y}\n",
      /instance_id values must be unique/,
    ],
    [
      "  instances:\n    - {instance_id: 'a,b', app: b, space: c, org: d, dir: /x}\n",
      /rotator.instances.0.instance_id/,
    ],
    [
      "  instances:\n    - {instance_id: a, app: b, space: c, org: d, ips: [nope], dir: /x}\n",
      /rotator.instances.0.ips.0/,
    ],
  ] as const;
  for (const [extra, re] of bad) {
    const text =
      "rotator:\n  ca_url: https://127.0.0.1:8443\n  ca_bundle: b.pem\n  token_file: t\n" +
      extra;
    assert.throws(
      () => parseConfig(text),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      extra,
    );
  }
  assert.throws(
    () =>
      parseConfig(
        "rotator:\n  ca_url: http://127.0.0.1:8443\n  ca_bundle: b\n  token_file: t\n",
      ),
    /rotator.ca_url/,
  );
});

Deno.test("RotatorSection refuses a key_mode that lets group or others read keys", () => {
  const base =
    "rotator:\n  ca_url: https://127.0.0.1:8443\n  ca_bundle: b.pem\n  token_file: t\n";
  assert.throws(
    () => parseConfig(base + '  key_mode: "0644"\n'),
    /key_mode: must not give group or others access/,
  );
  assert.equal(
    parseConfig(base + '  key_mode: "0400"\n').rotator!.key_mode,
    0o400,
  );
});

Deno.test("RotatorSection reads ca_url as one URL or a list of CA replicas, each https", () => {
  const section = (url: string) =>
    parseConfig(
      `rotator:\n  ca_url: ${url}\n  ca_bundle: b\n  token_file: t\n`,
    ).rotator!;
  assert.deepEqual(section("https://ca:8443").ca_url, ["https://ca:8443"]);
  assert.deepEqual(section("[https://ca-1:8443, https://ca-2:8443]").ca_url, [
    "https://ca-1:8443",
    "https://ca-2:8443",
  ]);
  assert.throws(
    () => section("[https://ca-1:8443, http://ca-2:8443]"),
    /rotator.ca_url/,
  );
  assert.throws(() => section("[]"), /rotator.ca_url/);
});

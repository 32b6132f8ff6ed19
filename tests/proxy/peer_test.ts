import assert from "node:assert/strict";
import { sanMatches } from "../../lib/proxy/mod.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import { ConfigError } from "../../lib/config/mod.ts";

Deno.test("sanMatches() matches exact DNS names case-insensitively and URIs exactly", () => {
  assert.ok(
    sanMatches("gorouter.service.cf.internal", "GoRouter.service.cf.internal"),
  );
  assert.ok(
    !sanMatches(
      "gorouter.service.cf.internal",
      "ssh-proxy.service.cf.internal",
    ),
  );
  assert.ok(sanMatches("spiffe://td/router", "spiffe://td/router"));
  assert.ok(!sanMatches("spiffe://td/router", "spiffe://td/router/x"));
});

Deno.test("sanMatches() lets * stand for one label or part of one label only", () => {
  assert.ok(
    sanMatches("*.service.cf.internal", "gorouter.service.cf.internal"),
  );
  assert.ok(!sanMatches("*.service.cf.internal", "a.b.service.cf.internal"));
  assert.ok(!sanMatches("*.service.cf.internal", "service.cf.internal"));
  assert.ok(sanMatches("router-*.internal", "router-3.internal"));
  assert.ok(!sanMatches("router-*.internal", "router-.internal"));
});

Deno.test("parseConfig() resolves proxy defaults and rejects bad proxy sections", () => {
  const cfg = parseConfig([
    "proxy:",
    "  instances:",
    "    - credentials_dir: /var/lib/sigil/instances/a7c",
    "      mode: tls",
    "      listeners:",
    "        - { listen: '0.0.0.0:61001', app: '127.0.0.1:8080' }",
  ].join("\n")).proxy!;
  assert.equal(cfg.connect_timeout, 250);
  assert.equal(cfg.drain_timeout, 15_000);
  assert.equal(cfg.min_tls_version, "TLSv1.2");
  assert.equal(cfg.admin_listen.port, 61003);
  assert.equal(cfg.instances[0]!.cert_file, "instance.crt");
  const bad = (yaml: string[], re: RegExp) =>
    assert.throws(
      () => parseConfig(yaml.join("\n")),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
  bad([
    "proxy:",
    "  admin_listen: 0.0.0.0:61003",
    "  instances:",
    "    - { credentials_dir: /x, mode: tls, listeners: [{ listen: '0.0.0.0:1', app: '127.0.0.1:2' }] }",
  ], /admin_listen: must be a loopback address/);
  bad([
    "proxy:",
    "  instances:",
    "    - { credentials_dir: /x, listeners: [{ listen: '0.0.0.0:1', app: '127.0.0.1:2' }] }",
  ], /mode/);
  bad([
    "proxy:",
    "  instances:",
    "    - { credentials_dir: /x, mode: tls, listeners: [{ listen: '0.0.0.0:1', app: '127.0.0.1:2' }] }",
    "    - { credentials_dir: /y, mode: tls, listeners: [{ listen: '0.0.0.0:1', app: '127.0.0.1:3' }] }",
  ], /already used by/);
  bad([
    "proxy:",
    "  instances:",
    "    - credentials_dir: /x",
    "      mode: tls",
    "      listeners: [{ listen: '0.0.0.0:1', app: '127.0.0.1:2' }]",
    "      register: { routes: [a.example.com], host: 10.0.0.5 }",
  ], /register needs at least one target/);
});

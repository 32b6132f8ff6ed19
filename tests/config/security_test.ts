/**
 * Config checks that keep secrets off plain-text links: bearer tokens to a
 * router API, JWKS fetches, and TLS options for the API and NATS.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";

function proxyYaml(router: string[], nats: string[] = []): string {
  return [
    "proxy:",
    "  instances:",
    "    - credentials_dir: /var/lib/sigil/instances/a7c",
    "      mode: tls",
    "      listeners:",
    "        - { listen: 0.0.0.0:61001, app: 127.0.0.1:8080 }",
    "      register:",
    "        routes: [hello.example.com]",
    "        host: 10.0.0.5",
    ...(router.length ? ["        routers:", ...router] : []),
    ...nats,
  ].join("\n") + "\n";
}

function routerYaml(api: string[], nats: string[] = []): string {
  return ["router:", "  api:", ...api, ...nats].join("\n") + "\n";
}

function issues(text: string): Record<string, string> {
  try {
    parseConfig(text, "t.yaml");
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return Object.fromEntries(e.issues.map((i) => [i.path, i.message]));
  }
  return {};
}

Deno.test("proxy refuses a token_file with an http:// router URL on a non-loopback host", () => {
  const text = proxyYaml([
    "          - url: http://10.0.0.10:8082",
    "            token_file: /etc/sigil/router.token",
  ]);
  const got = issues(text);
  const msg = got["proxy.instances.0.register.routers.0.url"];
  assert.ok(msg, `an issue on the url: ${JSON.stringify(got)}`);
  assert.match(msg, /send tokens over https/);
  assert.match(msg, /api\.cert\/api\.key/);
  assert.match(msg, /https:\/\//);
  assert.throws(() => parseConfig(text), /send tokens over https/);
  // Host names that merely start like loopback are not loopback.
  assert.match(
    issues(proxyYaml([
      "          - url: http://localhost.evil.example:8082",
      "            token_file: /t",
    ]))["proxy.instances.0.register.routers.0.url"] ?? "",
    /send tokens over https/,
  );
});

Deno.test("proxy accepts https router URLs, loopback http with a token, and http without a token", () => {
  for (
    const target of [
      ["          - url: https://10.0.0.10:8082", "            token_file: /t"],
      ["          - url: http://127.0.0.1:8082", "            token_file: /t"],
      ["          - url: http://127.1.2.3:8082", "            token_file: /t"],
      ["          - url: http://localhost:8082", "            token_file: /t"],
      ["          - url: http://[::1]:8082", "            token_file: /t"],
      ["          - url: http://10.0.0.10:8082"],
    ]
  ) {
    assert.deepEqual(issues(proxyYaml(target)), {}, target.join(" "));
  }
});

Deno.test("router refuses a non-loopback http jwks_url and accepts https or loopback http", () => {
  const bad = issues(
    routerYaml(['    jwks_url: "http://ca.internal:8443/v1/jwks.json"']),
  );
  assert.match(bad["router.api.jwks_url"] ?? "", /must be an https:\/\/ URL/);
  for (
    const url of [
      "https://ca.internal:8443/v1/jwks.json",
      "http://127.0.0.1:8443/v1/jwks.json",
      "http://localhost:8443/v1/jwks.json",
      "http://[::1]:8443/v1/jwks.json",
    ]
  ) {
    assert.deepEqual(issues(routerYaml([`    jwks_url: "${url}"`])), {}, url);
  }
});

Deno.test("router api.cert and api.key go together", () => {
  const base = ["    public_key_file: /etc/sigil/token.jwk"];
  assert.match(
    issues(routerYaml([...base, "    cert: /etc/sigil/api.crt"]))[
      "router.api.key"
    ] ?? "",
    /api\.cert and api\.key go together/,
  );
  assert.match(
    issues(routerYaml([...base, "    key: /etc/sigil/api.key"]))[
      "router.api.key"
    ] ?? "",
    /go together/,
  );
  const cfg = parseConfig(
    routerYaml([
      ...base,
      "    cert: /etc/sigil/api.crt",
      "    key: /etc/sigil/api.key",
    ]),
  );
  assert.equal(cfg.router?.api.cert, "/etc/sigil/api.crt");
  assert.equal(cfg.router?.api.key, "/etc/sigil/api.key");
});

Deno.test("nats.tls_ca is accepted for the router and for a proxy's register.nats", () => {
  const router = parseConfig(routerYaml(
    ["    public_key_file: /etc/sigil/token.jwk"],
    [
      "  nats:",
      '    servers: ["nats://user:pw@10.0.0.20:4222"]',
      "    tls_ca: /etc/sigil/nats-ca.pem",
    ],
  ));
  assert.equal(router.router?.nats?.tls_ca, "/etc/sigil/nats-ca.pem");
  const proxy = parseConfig(proxyYaml([], [
    "        nats:",
    '          servers: ["nats://10.0.0.20:4222"]',
    "          tls_ca: /etc/sigil/nats-ca.pem",
  ]));
  assert.equal(
    proxy.proxy?.instances[0]?.register?.nats?.tls_ca,
    "/etc/sigil/nats-ca.pem",
  );
  assert.equal(
    issues(routerYaml(
      ["    public_key_file: /k"],
      ["  nats:", "    servers: [nats://a:4222]", '    tls_ca: ""'],
    ))["router.nats.tls_ca"] !== undefined,
    true,
  );
});

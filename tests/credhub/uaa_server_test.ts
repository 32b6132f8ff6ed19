// `sigil credhub` with a `credhub.uaa` section serves the token endpoint the
// `credhub` CLI logs in with, on its own port: `/info` advertises the server
// itself as `auth-server.url` (credhub InfoController.kt), `POST /oauth/token`
// answers as UAA's TokenEndpoint (client_credentials; a wrong secret is 401
// invalid_client "Bad credentials"), `/version` needs a token
// (VersionController.kt). Repeated wrong secrets answer 429 with Retry-After,
// the status of UAA's own rate limiter (uaa docs/UAA-Rate-Limiting.md); UAA
// itself never locks clients out.
import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeJwt, generateKeyPair, importPKCS8, SignJWT } from "jose";
import { startTestCredhub } from "../_helpers/credhub.ts";
import { runCommand, sigil } from "../_helpers/proc.ts";
import { addClient } from "../../lib/credhub/_clients.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import { startCredhub } from "../../lib/credhub/mod.ts";
import { silentLogger } from "../../lib/observe/mod.ts";

/** curl over real TLS, trusting the test root: status, headers and body. */
async function curl(ca: string, url: string, args: string[] = []) {
  const r = await runCommand("curl", [
    "-sS",
    "--cacert",
    ca,
    "-D",
    "-",
    ...args,
    url,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const [head, ...rest] = r.stdout.split("\r\n\r\n");
  const status = Number(head!.split(" ")[1]);
  const headers = new Headers();
  for (const line of head!.split("\r\n").slice(1)) {
    const at = line.indexOf(":");
    headers.append(line.slice(0, at), line.slice(at + 1).trim());
  }
  const text = rest.join("\r\n\r\n");
  return { status, headers, body: text ? JSON.parse(text) : undefined };
}

const login = (secret: string, client = "broker") => [
  "-d",
  "grant_type=client_credentials",
  "-d",
  "response_type=token",
  "-d",
  `client_id=${client}`,
  "--data-urlencode",
  `client_secret=${secret}`,
];

Deno.test("sigil credhub with credhub.uaa: /info names itself as auth-server, curl logs in, the token's scopes reach the API", async () => {
  const t = await startTestCredhub({ uaa: true });
  try {
    const ca = `${t.dir}/certs/ca.crt`;
    const secret = await addClient(t.clientsFile, "broker", [
      "credhub.write",
      "credhub.read",
    ]);
    const reader = await addClient(t.clientsFile, "auditor", ["credhub.read"]);
    const info = await curl(ca, `${t.ch.url}/info`);
    assert.equal(info.status, 200);
    assert.deepEqual(info.body, {
      "auth-server": { url: t.ch.url },
      app: { name: "CredHub" },
    });

    const tok = await curl(ca, `${t.ch.url}/oauth/token`, login(secret));
    assert.equal(tok.status, 200);
    assert.equal(tok.headers.get("cache-control"), "no-store");
    assert.equal(tok.body.token_type, "bearer");
    assert.equal(tok.body.expires_in, 300);
    const claims = decodeJwt(tok.body.access_token);
    assert.equal(claims.sub, "broker");
    assert.equal(claims.scope, "credhub.write credhub.read");
    assert.equal(claims.exp! - claims.iat!, 300);

    const bearer = (token: string) => [
      "-H",
      `authorization: bearer ${token}`,
    ];
    const version = await curl(
      ca,
      `${t.ch.url}/version`,
      bearer(tok.body.access_token),
    );
    assert.equal(version.status, 200);
    assert.match(version.body.version, /^2\.\d+\.\d+$/);
    assert.equal((await curl(ca, `${t.ch.url}/version`)).status, 401);

    const put = await curl(ca, `${t.ch.url}/api/v1/data`, [
      ...bearer(tok.body.access_token),
      "-X",
      "PUT",
      "-H",
      "content-type: application/json",
      "-d",
      '{"name":"/c/p/v","type":"value","value":"x"}',
    ]);
    assert.equal(put.status, 200);
    // The auditor's token carries only credhub.read: it cannot write.
    const ro = await curl(
      ca,
      `${t.ch.url}/oauth/token`,
      login(reader, "auditor"),
    );
    const denied = await curl(ca, `${t.ch.url}/api/v1/data`, [
      ...bearer(ro.body.access_token),
      "-X",
      "PUT",
      "-H",
      "content-type: application/json",
      "-d",
      '{"name":"/c/p/w","type":"value","value":"x"}',
    ]);
    assert.equal(denied.status, 403);
  } finally {
    await t.close();
  }
});

Deno.test("sigil credhub token endpoint: a wrong secret is 401 invalid_client over TLS, then 429 with Retry-After, without the secret in any answer", async () => {
  const t = await startTestCredhub({ uaa: true });
  try {
    const ca = `${t.dir}/certs/ca.crt`;
    const secret = await addClient(t.clientsFile, "broker", ["credhub.read"]);
    for (let i = 0; i < 5; i++) {
      const bad = await curl(
        ca,
        `${t.ch.url}/oauth/token`,
        login("wrong-secret-xyz"),
      );
      assert.equal(bad.status, 401);
      assert.deepEqual(bad.body, {
        error: "invalid_client",
        error_description: "Bad credentials",
      });
      assert.match(
        bad.headers.get("www-authenticate")!,
        /invalid_client|unauthorized/,
      );
    }
    const limited = await curl(ca, `${t.ch.url}/oauth/token`, login(secret));
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get("retry-after")) > 0);
    assert.ok(!JSON.stringify(limited.body).includes(secret));
    // Another client from the same address is not held back.
    const other = await addClient(t.clientsFile, "other", ["credhub.read"]);
    const ok = await curl(ca, `${t.ch.url}/oauth/token`, login(other, "other"));
    assert.equal(ok.status, 200);
  } finally {
    await t.close();
  }
});

Deno.test("startCredhub refuses a token key others can read, a non-EC key, and a public_key_file that cannot verify its own tokens", async () => {
  const t = await startTestCredhub();
  const dir = await Deno.makeTempDir();
  try {
    const base = (extra: string) =>
      parseConfig(`credhub:
  listen: 127.0.0.1:0
  database: ${dir}/ch.db
  keys_dir: ${dir}/keys
  tls_cert_file: ${t.dir}/server.crt
  tls_key_file: ${t.dir}/server.key
  trusted_cas_file: ${t.dir}/certs/ca.crt
${extra}`).credhub!;
    const key = join(dir, "token.key");
    await Deno.copyFile(t.tokenKeyFile, key);
    await Deno.chmod(key, 0o640);
    const uaa =
      `  uaa:\n    clients_file: ${dir}/clients.json\n    token_key_file: ${key}\n`;
    await assert.rejects(
      () => startCredhub(base(uaa), { logger: silentLogger }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "ERR_CREDHUB_TOKEN_KEY");
        assert.match(
          err.message,
          /token\.key" is readable by group or others \(mode 640\); run 'chmod 600/,
        );
        return true;
      },
    );
    await Deno.chmod(key, 0o600);
    const rsa = join(dir, "rsa.key");
    const gen = await runCommand("openssl", [
      "genpkey",
      "-algorithm",
      "RSA",
      "-pkeyopt",
      "rsa_keygen_bits:2048",
      "-out",
      rsa,
    ]);
    assert.equal(gen.code, 0, gen.stderr);
    await Deno.chmod(rsa, 0o600);
    await assert.rejects(
      () => startCredhub(base(uaa.replace(key, rsa)), { logger: silentLogger }),
      /rsa\.key" is a rsa-2048 key; tokens are ES256/,
    );
    // A public key of another key pair would turn every login into 401s.
    const otherKey = join(dir, "other.key");
    const other = join(dir, "other.pub");
    for (
      const args of [
        [
          "genpkey",
          "-algorithm",
          "EC",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-out",
          otherKey,
        ],
        ["pkey", "-in", otherKey, "-pubout", "-out", other],
      ]
    ) {
      const r = await runCommand("openssl", args);
      assert.equal(r.code, 0, r.stderr);
    }
    await assert.rejects(
      () =>
        startCredhub(base(`  public_key_file: ${other}\n${uaa}`), {
          logger: silentLogger,
        }),
      /public_key_file ".*other\.pub" does not verify tokens signed with uaa\.token_key_file/,
    );
    // Without public_key_file or jwks_url the key's public half verifies.
    const ch = await startCredhub(base(uaa), { logger: silentLogger });
    await ch.close();
  } finally {
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("credhub.uaa schema: defaults, unknown keys and bad durations are refused with their path", () => {
  const yaml = (uaa: string) =>
    `credhub:\n  database: /d\n  keys_dir: /k\n  tls_cert_file: /c\n  tls_key_file: /k\n  trusted_cas_file: /t\n  uaa:\n${uaa}`;
  const ok = parseConfig(
    yaml("    clients_file: /c.json\n    token_key_file: /t.key\n"),
  ).credhub!.uaa!;
  assert.deepEqual(ok, {
    clients_file: "/c.json",
    token_key_file: "/t.key",
    token_ttl: 300_000,
    max_failures: 5,
    failure_window: 60_000,
  });
  assert.throws(
    () =>
      parseConfig(
        yaml(
          "    clients_file: /c.json\n    token_key_file: /t.key\n    token_tll: 5m\n",
        ),
      ),
    /token_tll/,
  );
  assert.throws(
    () =>
      parseConfig(
        yaml(
          "    clients_file: /c.json\n    token_key_file: /t.key\n    token_ttl: 2d\n",
        ),
      ),
    /credhub\.uaa\.token_ttl[\s\S]*between "10s" and "24h"/,
  );
  assert.throws(
    () => parseConfig(yaml("    token_key_file: /t.key\n")),
    /credhub\.uaa\.clients_file/,
  );
});

Deno.test("sigil config check refuses a group-readable uaa token key or clients file as sigil credhub does, and accepts them at 0600", async () => {
  const t = await startTestCredhub();
  const dir = await Deno.makeTempDir();
  try {
    const key = join(dir, "token.key");
    const clients = join(dir, "clients.json");
    await Deno.copyFile(t.tokenKeyFile, key);
    await addClient(clients, "broker", ["credhub.read"]);
    const file = join(dir, "ch.yaml");
    await Deno.writeTextFile(
      file,
      `credhub:
  listen: 127.0.0.1:0
  database: ${dir}/ch.db
  keys_dir: ${dir}/keys
  tls_cert_file: ${t.dir}/server.crt
  tls_key_file: ${t.dir}/server.key
  trusted_cas_file: ${t.dir}/certs/ca.crt
  uaa:
    clients_file: ${clients}
    token_key_file: ${key}
`,
    );
    await Deno.chmod(key, 0o644);
    const checked = await sigil(["config", "check", file]);
    assert.equal(checked.code, 2, checked.stdout);
    assert.match(
      checked.stderr,
      /credhub\.uaa\.token_key_file: ".*token\.key" is readable by group or others \(mode 644\)/,
    );
    // sigil credhub runs the same file checks before it starts (exit 2).
    const started = await sigil(["credhub", "--config", file]);
    assert.equal(started.code, 2, started.stderr);
    assert.match(
      started.stderr,
      /"start-failed".*credhub\.uaa\.token_key_file: .*token\.key\\" is readable by group or others \(mode 644\)/,
    );
    await Deno.chmod(key, 0o600);
    await Deno.chmod(clients, 0o644);
    const again = await sigil(["config", "check", file]);
    assert.equal(again.code, 2);
    assert.match(
      again.stderr,
      /credhub\.uaa\.clients_file: ".*clients\.json" is readable/,
    );
    await Deno.chmod(clients, 0o600);
    const good = await sigil(["config", "check", file]);
    assert.equal(good.code, 0, good.stderr);
    // A clients file that does not exist yet is fine: 'client add' creates it.
    await Deno.remove(clients);
    assert.equal((await sigil(["config", "check", file])).code, 0);
  } finally {
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("credhub.uaa with a wildcard listen address needs auth_server_url (else /info would advertise 0.0.0.0)", () => {
  const yaml = (extra: string) =>
    `credhub:\n  listen: 0.0.0.0:8844\n  database: /d\n  keys_dir: /k\n  tls_cert_file: /c\n  tls_key_file: /k\n  trusted_cas_file: /t\n${extra}`;
  const uaa = "  uaa:\n    clients_file: /c.json\n    token_key_file: /t.key\n";
  assert.throws(
    () => parseConfig(yaml(uaa)),
    /credhub\.auth_server_url[\s\S]*required with uaa when listen is a wildcard/,
  );
  assert.equal(
    parseConfig(yaml(`  auth_server_url: https://credhub.example:8844\n${uaa}`))
      .credhub!.auth_server_url,
    "https://credhub.example:8844",
  );
  // Without uaa the token endpoint is elsewhere: no such rule.
  assert.ok(parseConfig(yaml("")).credhub);
});

Deno.test("a refused or missing bearer token answers in CredHub's OAuth2 shape: access_token_expired, invalid_token, unauthorized (OAuth2AuthenticationExceptionHandler.kt)", async () => {
  const t = await startTestCredhub({ uaa: true });
  try {
    const ca = `${t.dir}/certs/ca.crt`;
    const key = await importPKCS8(
      await Deno.readTextFile(t.tokenKeyFile),
      "ES256",
    );
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ scope: "credhub.read" })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("broker")
      .setExpirationTime(now - 300)
      .sign(key);
    const r1 = await curl(ca, `${t.ch.url}/api/v1/data?path=/`, [
      "-H",
      `authorization: bearer ${expired}`,
    ]);
    assert.equal(r1.status, 401);
    assert.deepEqual(r1.body, {
      error: "access_token_expired",
      error_description: "Access token expired",
    });
    const forged = await new SignJWT({ scope: "credhub.read" })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("broker")
      .setExpirationTime(now + 300)
      .sign((await generateKeyPair("ES256")).privateKey);
    const r2 = await curl(ca, `${t.ch.url}/api/v1/data?path=/`, [
      "-H",
      `authorization: bearer ${forged}`,
    ]);
    assert.equal(r2.status, 401);
    assert.deepEqual(r2.body, {
      error: "invalid_token",
      error_description:
        "The request token signature could not be verified. Please validate that your request token was issued by the UAA server authorized by CredHub.",
    });
    assert.ok(!JSON.stringify(r2.body).includes(forged));
    const r3 = await curl(ca, `${t.ch.url}/api/v1/data?path=/`);
    assert.equal(r3.status, 401);
    assert.deepEqual(r3.body, {
      error: "unauthorized",
      error_description:
        "Full authentication is required to access this resource",
    });
  } finally {
    await t.close();
  }
});

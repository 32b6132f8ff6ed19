/**
 * Drill (issue 20, "Secrets"): an operator copies a key with `cp` (mode 644)
 * or restores a backup with a loose umask. Every role refuses a private key
 * or bearer-token file that group or others can read, naming the file and
 * the `chmod 600` to run, as the CA does for its own keys; `sigil config
 * check` says the same; the rotator sets the modes of the pair it finds at
 * start back to `key_mode`/`cert_mode` and logs each file it repaired.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FakeClock } from "../_helpers/fake_clock.ts";
import { createTestPki } from "../_helpers/pki.ts";
import { checkConfigFiles, parseConfig } from "../../lib/config/mod.ts";
import { RotatorSection } from "../../lib/config/mod.ts";
import { readTokenFile } from "../../lib/common/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { CredentialsError, startProxy } from "../../lib/proxy/mod.ts";
import { RouterError, startRouter } from "../../lib/router/mod.ts";
import { RouterSection } from "../../lib/config/mod.ts";
import { startRotator } from "../../lib/rotator/mod.ts";
import { createTestCa } from "../rotator/_ca.ts";
import { proxySection } from "../proxy/_helpers.ts";

const quiet = createLogger("test", { level: "error", sink: () => {} });

function assertNamesFix(err: unknown, path: string) {
  const msg = (err as Error).message;
  assert.match(msg, /readable by group or others \(mode 644\)/, msg);
  assert.ok(msg.includes(`"${path}"`), `names the file: ${msg}`);
  assert.ok(msg.includes(`chmod 600 ${path}`), `names the fix: ${msg}`);
  assert.doesNotMatch(msg, /PRIVATE KEY|BEGIN/);
  return true;
}

Deno.test("key modes: the proxy refuses an instance.key readable by group or others (names the file and chmod 600)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-modes-" });
  try {
    const pki = await createTestPki();
    await pki.writeInstance(`${dir}/creds`, { instanceId: "inst-1" });
    const key = `${dir}/creds/instance.key`;
    await Deno.chmod(key, 0o644);
    const section = proxySection({
      instances: [{
        credentials_dir: `${dir}/creds`,
        mode: "tls",
        listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:1" }],
      }],
    });
    await assert.rejects(
      startProxy(section, { logger: quiet, watch: false }),
      (err) =>
        err instanceof CredentialsError &&
        err.code === "ERR_FILE_PERMISSIONS" &&
        assertNamesFix(err, key),
    );
    const issues = await checkConfigFiles(parseConfig(
      `proxy:\n  instances:\n    - credentials_dir: ${dir}/creds\n      mode: tls\n      listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:1" }]\n`,
    ));
    assert.equal(issues.length, 1, JSON.stringify(issues));
    assert.equal(issues[0]!.path, "proxy.instances.0.key_file");
    assertNamesFix(new Error(issues[0]!.message), key);
    // Fixed as the message says, the same files serve.
    await Deno.chmod(key, 0o600);
    const proxy = await startProxy(section, { logger: quiet, watch: false });
    await proxy.close({ drainTimeoutMs: 0 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("key modes: the router refuses backends.key, api.key and https.key readable by group or others", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-modes-" });
  try {
    const pki = await createTestPki();
    const client = await pki.issueClient({ commonName: "router" });
    const server = await pki.issueClient({
      commonName: "router.test",
      dnsNames: ["router.test"],
    });
    await Deno.writeTextFile(`${dir}/ca.pem`, pki.rootPem);
    await Deno.writeTextFile(`${dir}/tok.pem`, pki.rootPem);
    for (const n of ["backend", "api", "https"]) {
      const cred = n === "backend" ? client : server;
      await Deno.writeTextFile(`${dir}/${n}.crt`, cred.certPem);
      await Deno.writeTextFile(`${dir}/${n}.key`, cred.keyPem, { mode: 0o600 });
    }
    const { exportJWK, generateKeyPair } = await import("jose");
    const { publicKey } = await generateKeyPair("ES256", { extractable: true });
    await Deno.writeTextFile(
      `${dir}/token.jwk`,
      JSON.stringify(await exportJWK(publicKey)),
    );
    const input = {
      listen: "127.0.0.1:0",
      https: {
        listen: "127.0.0.1:0",
        cert: `${dir}/https.crt`,
        key: `${dir}/https.key`,
      },
      api: {
        listen: "127.0.0.1:0",
        public_key_file: `${dir}/token.jwk`,
        cert: `${dir}/api.crt`,
        key: `${dir}/api.key`,
      },
      backends: {
        mode: "mtls" as const,
        ca: `${dir}/ca.pem`,
        cert: `${dir}/backend.crt`,
        key: `${dir}/backend.key`,
      },
      access_log: { enabled: false },
    };
    for (
      const [n, setting] of [
        ["backend", "router.backends.key"],
        ["api", "router.api.key"],
        ["https", "router.https.key"],
      ]
    ) {
      const key = `${dir}/${n}.key`;
      await Deno.chmod(key, 0o644);
      await assert.rejects(
        startRouter(RouterSection.parse(input), { logger: quiet }),
        (err) =>
          err instanceof RouterError && err.code === "ERR_FILE_PERMISSIONS" &&
          assertNamesFix(err, key),
        n,
      );
      const issues = await checkConfigFiles({
        router: RouterSection.parse(input),
      });
      assert.deepEqual(issues.map((i) => i.path), [setting]);
      assertNamesFix(new Error(issues[0]!.message), key);
      await Deno.chmod(key, 0o600);
    }
    const router = await startRouter(RouterSection.parse(input), {
      logger: quiet,
    });
    await router.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("key modes: token files (rotator token_file, proxy router token) readable by others are refused by the role and by config check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-modes-" });
  try {
    const token = `${dir}/token`;
    await Deno.writeTextFile(token, "eyJhbGciOiJFUzI1NiJ9.e30.c2ln\n", {
      mode: 0o644,
    });
    await Deno.chmod(token, 0o644);
    await Deno.writeTextFile(`${dir}/ca.pem`, (await createTestPki()).rootPem);
    await assert.rejects(readTokenFile(token), (e) => assertNamesFix(e, token));
    const issues = await checkConfigFiles(parseConfig(`
rotator:
  ca_url: https://127.0.0.1:1
  ca_bundle: ${dir}/ca.pem
  token_file: ${token}
  instances: []
proxy:
  instances:
    - credentials_dir: ${dir}/creds
      mode: tls
      listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:1" }]
      register:
        routes: [a.test]
        host: 127.0.0.1
        routers: [{ url: "http://127.0.0.1:1", token_file: ${token} }]
`));
    assert.deepEqual(issues.map((i) => i.path), [
      "rotator.token_file",
      "proxy.instances.0.register.routers.0.token_file",
    ]);
    for (const i of issues) assertNamesFix(new Error(i.message), token);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("key modes: the rotator sets the modes of the pair it finds at start back to key_mode/cert_mode and logs each file", async () => {
  const base = await Deno.makeTempDir({ prefix: "sigil-modes-" });
  try {
    const clock = new FakeClock();
    const ca = await createTestCa({ clock, validityMs: 3_600_000 });
    await Deno.writeTextFile(join(base, "bundle.pem"), ca.rootPem);
    const section = RotatorSection.parse({
      ca_url: "https://127.0.0.1:1",
      ca_bundle: join(base, "bundle.pem"),
      token_file: join(base, "token"),
      instances: [{
        instance_id: "inst-1",
        app: "app-1",
        space: "space-1",
        org: "org-1",
        ips: ["10.0.0.1"],
        dir: join(base, "inst-1"),
      }],
    });
    const logs: Array<Record<string, unknown>> = [];
    const start = () =>
      startRotator(section, {
        clock,
        sign: ca.signer(),
        logger: createLogger("rotator", {
          level: "debug",
          now: () => clock.now(),
          sink: (l) => logs.push(JSON.parse(l)),
        }),
        sync: false,
      });
    const r1 = await start();
    await r1.ready();
    await r1.close();
    const key = join(base, "inst-1", "instance.key");
    const crt = join(base, "inst-1", "instance.crt");
    await Deno.chmod(key, 0o644);
    await Deno.chmod(crt, 0o600);
    const r2 = await start();
    await r2.ready();
    await r2.close();
    assert.equal((await Deno.stat(key)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(crt)).mode! & 0o777, 0o644);
    assert.equal(ca.issued, 1, "the pair was kept, only its modes changed");
    const repaired = logs.filter((l) =>
      l.event === "credentials-mode-repaired"
    );
    assert.deepEqual(
      repaired.map((l) => [l.file, l.mode_was, l.mode]),
      [
        ["versions/1/instance.key", "644", "600"],
        ["versions/1/instance.crt", "600", "644"],
      ],
    );
    assert.equal(repaired[0]!.instance, "inst-1");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

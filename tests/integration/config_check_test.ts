/**
 * `sigil config check` tells the truth: on the same broken configs it refuses
 * what starting the role refuses, and both name the setting or the path,
 * without a stack trace.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { generateKeyPairSync } from "node:crypto";
import { MAIN, ROOT, sigil, SigilProcess } from "../_helpers/proc.ts";
import { createTestPki } from "../_helpers/pki.ts";
import { SqliteCredentialStore } from "../../lib/credhub/mod.ts";

/** Runs `sigil ARGS`, killed after 60 s so a role that does not refuse fails the test. */
async function bounded(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

const STACK = /Uncaught|\n\s+at |error: /;

/** The `start-failed` JSON log line a role prints when it cannot start. */
function startFailure(stderr: string): { code: string; error: string } {
  const line = stderr.split("\n").filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l)).find((l) => l.event === "start-failed");
  assert.ok(line, `no start-failed JSON line in:\n${stderr}`);
  assert.equal(line.level, "error");
  return line;
}

interface Case {
  name: string;
  yaml: string;
  start: string[];
  /** What both outputs must mention (setting or path). */
  check: RegExp;
  started: RegExp;
}

Deno.test("sigil config check refuses what starting the role refuses, naming the setting or path (no stack traces)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pki = await createTestPki();
    const creds = join(dir, "creds");
    await pki.writeInstance(creds, { instanceId: "i-1" });
    const garbage = join(dir, "garbage.pem");
    await Deno.writeTextFile(garbage, "not a certificate\n");
    const badCert = join(dir, "bad-cert.pem");
    await Deno.writeTextFile(
      badCert,
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    const badCreds = join(dir, "bad-creds");
    await Deno.mkdir(badCreds);
    await Deno.writeTextFile(join(badCreds, "instance.crt"), "garbage\n");
    await Deno.writeTextFile(
      join(badCreds, "instance.key"),
      (await pki.issueInstance({ instanceId: "i-2" })).keyPem,
    );
    const emptyCa = join(dir, "empty-ca");
    await Deno.mkdir(emptyCa);
    const instance = (extra: string, credsDir = creds) =>
      `proxy:\n  admin_listen: 127.0.0.1:0\n  instances:\n    - credentials_dir: ${credsDir}\n      listeners: [{listen: "127.0.0.1:0", app: "127.0.0.1:1"}]\n${extra}`;
    const router = (extra: string) =>
      `router:\n  listen: 127.0.0.1:0\n  api: {enabled: false}\n${extra}`;
    const cases: Case[] = [
      {
        name: "ca.dir missing",
        yaml: `ca:\n  dir: ${dir}/no-ca\n  listen: 127.0.0.1:0\n`,
        start: ["ca", "serve"],
        check: /ca\.dir: .*no-ca/,
        started: /no-ca/,
      },
      {
        name: "ca.dir not a CA directory",
        yaml: `ca:\n  dir: ${emptyCa}\n  listen: 127.0.0.1:0\n`,
        start: ["ca", "serve"],
        check: /ca\.dir: .*empty-ca.*ca init/,
        started: /empty-ca/,
      },
      {
        name: "proxy credentials_dir is a file",
        yaml: instance("      mode: tls\n", garbage),
        start: ["proxy"],
        check: /credentials_dir: .*garbage\.pem" is not a directory/,
        started: /garbage\.pem/,
      },
      {
        name: "proxy cert_file does not parse",
        yaml: instance("      mode: tls\n", badCreds),
        start: ["proxy"],
        check: /cert_file: .*bad-creds\/instance\.crt/,
        started: /bad-creds/,
      },
      {
        name: "proxy trusted_client_cas missing",
        yaml: instance(
          `      mode: mtls\n      trusted_client_cas: [${dir}/no-ca.pem]\n      allowed_client_sans: [router-1]\n`,
        ),
        start: ["proxy"],
        check: /trusted_client_cas\.0: .*no-ca\.pem/,
        started: /no-ca\.pem/,
      },
      {
        name: "proxy trusted_client_cas does not parse",
        yaml: instance(
          `      mode: mtls\n      trusted_client_cas: [${badCert}]\n      allowed_client_sans: [router-1]\n`,
        ),
        start: ["proxy"],
        check: /trusted_client_cas\.0: .*bad-cert\.pem/,
        started: /bad-cert\.pem|trusted_client_cas/,
      },
      {
        name: "proxy allowed_client_sans pattern",
        yaml: instance(
          `      mode: mtls\n      trusted_client_cas: [${garbage}]\n      allowed_client_sans: ["*.*.internal"]\n`,
        ),
        start: ["proxy"],
        check: /allowed_client_sans\.0: "\*\.\*\.internal"/,
        started: /allowed_client_sans\.0/,
      },
      {
        name: "router backends.ca does not parse",
        yaml: router(`  backends: {ca: ${garbage}}\n`),
        start: ["router"],
        check: /router\.backends\.ca: .*garbage\.pem/,
        started: /garbage\.pem/,
      },
      {
        name: "router access_log.file in a missing directory",
        yaml: router(`  access_log: {file: ${dir}/no-dir/access.log}\n`),
        start: ["router"],
        check: /router\.access_log\.file: .*no-dir/,
        started: /no-dir\/access\.log" \(router\.access_log\.file\)/,
      },
      {
        name: "a required key is missing",
        yaml: `ca:\n  listen: 127.0.0.1:0\n`,
        start: ["ca", "serve"],
        check: /ca\.dir: required/,
        started: /ca\.dir: required/,
      },
      {
        name: "an empty file",
        yaml: "",
        start: ["router"],
        check: /no section/,
        started: /section "router" is missing/,
      },
    ];
    for (const c of cases) {
      const file = join(dir, `${c.name.replaceAll(/\W+/g, "-")}.yaml`);
      await Deno.writeTextFile(file, c.yaml);
      const checked = await sigil(["config", "check", file]);
      assert.equal(
        checked.code,
        2,
        `${c.name}: config check: ${checked.stdout}`,
      );
      assert.match(checked.stderr, c.check, `${c.name}: config check`);
      assert.doesNotMatch(checked.stderr, STACK, c.name);
      const started = await bounded([...c.start, "--config", file]);
      assert.equal(started.signal, null, `${c.name}: start did not refuse`);
      assert.ok(
        started.code === 1 || started.code === 2,
        `${c.name}: start exit ${started.code}`,
      );
      assert.match(startFailure(started.stderr).error, c.started, c.name);
      assert.doesNotMatch(started.stderr, STACK, `${c.name}: start`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil config check accepts a config whose files are all usable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pki = await createTestPki();
    const creds = join(dir, "creds");
    await pki.writeInstance(creds, { instanceId: "i-1" });
    const caFile = join(dir, "root.pem");
    await Deno.writeTextFile(caFile, pki.rootPem);
    const file = join(dir, "ok.yaml");
    await Deno.writeTextFile(
      file,
      `proxy:\n  admin_listen: 127.0.0.1:0\n  instances:\n    - credentials_dir: ${creds}\n      mode: mtls\n      trusted_client_cas: [${caFile}]\n      allowed_client_sans: [router-1]\n      listeners: [{listen: "127.0.0.1:0", app: "127.0.0.1:1"}]\n    - credentials_dir: ${
        join(dir, "not-issued-yet")
      }\n      mode: tls\n      listeners: [{listen: "127.0.0.1:0", app: "127.0.0.1:1"}]\nrouter:\n  api: {enabled: false}\n  backends: {ca: ${caFile}}\n`,
    );
    const r = await sigil(["config", "check", file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok \(sections: proxy, router\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The `  section.key: message` lines of a config error. */
function issueLines(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter((l) =>
    /^credhub\.[\w.]+: /.test(l)
  );
}

/** Files of a usable `credhub` section, and the section's YAML with overrides. */
async function credhubFixture(dir: string) {
  const pki = await createTestPki();
  const server = await pki.issueClient({
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
  });
  const other = await pki.issueClient({ dnsNames: ["localhost"] });
  const f = (name: string) => join(dir, name);
  await Deno.writeTextFile(f("server.crt"), server.certPem);
  await Deno.writeTextFile(f("server.key"), server.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(f("other.key"), other.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(f("token.key"), other.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(f("open.key"), other.keyPem);
  await Deno.chmod(f("open.key"), 0o644);
  await Deno.writeTextFile(f("ca.crt"), pki.rootPem);
  await Deno.writeTextFile(f("garbage.pem"), "not a certificate\n", {
    mode: 0o600,
  });
  await Deno.writeTextFile(
    f("bad-cert.pem"),
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
  );
  const pub = (type: "ec" | "rsa") =>
    (type === "ec"
      ? generateKeyPairSync("ec", { namedCurve: "P-256" })
      : generateKeyPairSync("rsa", { modulusLength: 2048 })).publicKey.export({
        type: "spki",
        format: "pem",
      }) as string;
  await Deno.writeTextFile(f("token.pub"), pub("ec"));
  await Deno.writeTextFile(f("rsa.pub"), pub("rsa"));
  const yaml = (state: string, extra: Record<string, string> = {}) => {
    const settings: Record<string, string> = {
      listen: "127.0.0.1:0",
      database: join(state, "credhub.db"),
      keys_dir: join(state, "keys"),
      tls_cert_file: f("server.crt"),
      tls_key_file: f("server.key"),
      trusted_cas_file: f("ca.crt"),
      public_key_file: f("token.pub"),
      ...extra,
    };
    return "credhub:\n" +
      Object.entries(settings).filter(([, v]) => v !== "").map(([k, v]) =>
        `  ${k}: ${JSON.stringify(v)}\n`
      ).join("");
  };
  return { f, yaml };
}

Deno.test("sigil config check and sigil credhub refuse the same broken credhub configs with the same issue lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { f, yaml } = await credhubFixture(dir);
    /** A state directory, prepared by `prep`. */
    const state = async (name: string, prep?: (d: string) => Promise<void>) => {
      const d = join(dir, `state-${name}`);
      await Deno.mkdir(d);
      await prep?.(d);
      return d;
    };
    const cases: Array<{ name: string; yaml: string; names: RegExp }> = [
      {
        name: "trusted_cas_file missing",
        yaml: yaml(await state("a"), { trusted_cas_file: f("no-ca.pem") }),
        names: /credhub\.trusted_cas_file: .*no-ca\.pem.*no such file/,
      },
      {
        name: "trusted_cas_file holds no certificate",
        yaml: yaml(await state("b"), { trusted_cas_file: f("garbage.pem") }),
        names: /credhub\.trusted_cas_file: .*garbage\.pem.*no PEM certificate/,
      },
      {
        name: "tls_cert_file does not parse",
        yaml: yaml(await state("c"), { tls_cert_file: f("bad-cert.pem") }),
        names: /credhub\.tls_cert_file: .*bad-cert\.pem.*does not parse/,
      },
      {
        name: "tls_key_file is not a key",
        yaml: yaml(await state("d"), { tls_key_file: f("garbage.pem") }),
        names:
          /credhub\.tls_key_file: .*garbage\.pem.*no usable PEM private key/,
      },
      {
        name: "tls_key_file belongs to another certificate",
        yaml: yaml(await state("e"), { tls_key_file: f("other.key") }),
        names:
          /credhub\.tls_key_file: .*other\.key" does not match the certificate/,
      },
      {
        name: "tls_key_file readable by others",
        yaml: yaml(await state("e2"), { tls_key_file: f("open.key") }),
        names:
          /credhub\.tls_key_file: .*open\.key" is readable by group or others \(mode 644\); run 'chmod 600 /,
      },
      {
        name: "an encryption key readable by others",
        yaml: yaml(
          await state("f", async (d) => {
            await Deno.mkdir(join(d, "keys"));
            const k = join(d, "keys", "k.key");
            await Deno.writeTextFile(k, btoa("k".repeat(32)) + "\n");
            await Deno.chmod(k, 0o644);
          }),
        ),
        names:
          /credhub\.keys_dir: .*k\.key" is readable by group or others \(mode 644\); run 'chmod 600 /,
      },
      {
        name: "an encryption key of the wrong size",
        yaml: yaml(
          await state("g", async (d) => {
            await Deno.mkdir(join(d, "keys"));
            await Deno.writeTextFile(join(d, "keys", "k.key"), "c2hvcnQ=\n", {
              mode: 0o600,
            });
          }),
        ),
        names: /credhub\.keys_dir: .*k\.key" does not hold 32 bytes in base64/,
      },
      {
        name: "keys_dir is a file",
        yaml: yaml(
          await state("h", (d) => Deno.writeTextFile(join(d, "keys"), "")),
        ),
        names: /credhub\.keys_dir: .*keys" is not a directory/,
      },
      {
        name: "the key the stored credentials need is missing",
        yaml: yaml(
          await state("i", async (d) => {
            const store = new SqliteCredentialStore(
              join(d, "credhub.db"),
              join(d, "keys"),
            );
            await store.put("/c/x", "value", "secret", null);
            await store.close();
            for await (const e of Deno.readDir(join(d, "keys"))) {
              await Deno.remove(join(d, "keys", e.name));
            }
          }),
        ),
        names:
          /credhub\.database: credentials in .*credhub\.db" are encrypted under key [0-9a-f]{16}, not found in /,
      },
      {
        name: "database is not SQLite",
        yaml: yaml(
          await state(
            "j",
            (d) => Deno.writeTextFile(join(d, "credhub.db"), "garbage\n"),
          ),
        ),
        names:
          /credhub\.database: .*credhub\.db" is not a usable SQLite database/,
      },
      {
        name: "database directory missing",
        yaml: yaml(await state("k"), {
          database: join(dir, "no-dir", "credhub.db"),
        }),
        names: /credhub\.database: cannot use ".*no-dir": no such file/,
      },
      {
        name: "listen port out of range",
        yaml: yaml(await state("l"), { listen: "127.0.0.1:99999" }),
        names: /credhub\.listen: invalid address "127\.0\.0\.1:99999"/,
      },
      {
        name: "listen without a port",
        yaml: yaml(await state("m"), { listen: "localhost" }),
        names: /credhub\.listen: invalid address "localhost"/,
      },
      {
        name: "jwks_url over plain http to another host",
        yaml: yaml(await state("n"), {
          public_key_file: "",
          jwks_url: "http://10.0.0.2:8443/v1/jwks.json",
        }),
        names: /credhub\.jwks_url: must be an https:\/\/ URL unless/,
      },
      {
        name: "both jwks_url and public_key_file",
        yaml: yaml(await state("o"), {
          jwks_url: "https://127.0.0.1:8443/v1/jwks.json",
        }),
        names:
          /credhub\.public_key_file: set at most one of jwks_url or public_key_file/,
      },
      {
        name: "jwks_ca_file without jwks_url",
        yaml: yaml(await state("p"), { jwks_ca_file: f("ca.crt") }),
        names:
          /credhub\.jwks_ca_file: jwks_ca_file is only used to fetch jwks_url/,
      },
      {
        name: "jwks_ca_file holds no certificate",
        yaml: yaml(await state("q"), {
          public_key_file: "",
          jwks_url: "https://127.0.0.1:8443/v1/jwks.json",
          jwks_ca_file: f("garbage.pem"),
        }),
        names: /credhub\.jwks_ca_file: .*garbage\.pem.*no PEM certificate/,
      },
      {
        name: "public_key_file is an RSA key (tokens are ES256)",
        yaml: yaml(await state("r"), { public_key_file: f("rsa.pub") }),
        names:
          /credhub\.public_key_file: .*rsa\.pub" holds no usable token public key/,
      },
      {
        name: "public_key_file missing",
        yaml: yaml(await state("s"), { public_key_file: f("no.pub") }),
        names: /credhub\.public_key_file: cannot use ".*no\.pub": no such file/,
      },
      {
        name: "uaa token_key_file readable by others",
        yaml: yaml(await state("t")) +
          `  uaa:\n    clients_file: ${
            join(dir, "clients.json")
          }\n    token_key_file: ${f("open.key")}\n`,
        names: /credhub\.uaa\.token_key_file: /,
      },
      {
        name: "uaa clients_file in a missing directory",
        yaml: yaml(await state("u")) +
          `  uaa:\n    clients_file: ${
            join(dir, "no-dir", "clients.json")
          }\n    token_key_file: ${f("token.key")}\n`,
        names: /credhub\.uaa\.clients_file: .*no-dir/,
      },
    ];
    for (const c of cases) {
      const file = join(dir, `${c.name.replaceAll(/\W+/g, "-")}.yaml`);
      await Deno.writeTextFile(file, c.yaml);
      const [checked, started] = await Promise.all([
        sigil(["config", "check", file]),
        bounded(["credhub", "--config", file]),
      ]);
      assert.equal(checked.code, 2, `${c.name}: config check accepted it`);
      assert.equal(started.signal, null, `${c.name}: start did not refuse`);
      assert.equal(started.code, 2, `${c.name}: start exit ${started.code}`);
      const fromCheck = issueLines(checked.stderr);
      const fromStart = issueLines(startFailure(started.stderr).error);
      assert.match(fromCheck.join("\n"), c.names, `${c.name}: config check`);
      assert.deepEqual(fromStart, fromCheck, `${c.name}: start vs check`);
      for (const out of [checked.stderr, started.stderr]) {
        assert.doesNotMatch(out, STACK, c.name);
        assert.doesNotMatch(out, /-----BEGIN/, `${c.name}: no PEM body`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil config check accepts a usable credhub config and sigil credhub starts on it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { yaml } = await credhubFixture(dir);
    const state = join(dir, "state");
    await Deno.mkdir(state);
    // An existing store whose key is present.
    const store = new SqliteCredentialStore(
      join(state, "credhub.db"),
      join(state, "keys"),
    );
    await store.put("/c/x", "value", "secret", null);
    await store.close();
    const file = join(dir, "ok.yaml");
    await Deno.writeTextFile(file, yaml(state));
    const r = await sigil(["config", "check", file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok \(sections: credhub\)/);
    const ch = new SigilProcess(["credhub", "--config", file]);
    try {
      const up = await ch.waitForEvent("credhub-listening", 60_000);
      assert.equal(up.credentials, 1);
    } finally {
      await ch.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

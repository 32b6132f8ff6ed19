/**
 * `sigil config check` tells the truth: on the same broken configs it refuses
 * what starting the role refuses, and both name the setting or the path,
 * without a stack trace.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAIN, ROOT, sigil } from "../_helpers/proc.ts";
import { createTestPki } from "../_helpers/pki.ts";

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
        name: "proxy credentials_dir missing",
        yaml: instance("      mode: tls\n", join(dir, "no-creds")),
        start: ["proxy"],
        check: /credentials_dir: .*no-creds/,
        started: /no-creds/,
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
          `      mode: mtls\n      trusted_client_cas: [${dir}/no-ca.pem]\n`,
        ),
        start: ["proxy"],
        check: /trusted_client_cas\.0: .*no-ca\.pem/,
        started: /no-ca\.pem/,
      },
      {
        name: "proxy trusted_client_cas does not parse",
        yaml: instance(
          `      mode: mtls\n      trusted_client_cas: [${badCert}]\n`,
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
      `proxy:\n  admin_listen: 127.0.0.1:0\n  instances:\n    - credentials_dir: ${creds}\n      mode: mtls\n      trusted_client_cas: [${caFile}]\n      listeners: [{listen: "127.0.0.1:0", app: "127.0.0.1:1"}]\nrouter:\n  api: {enabled: false}\n  backends: {ca: ${caFile}}\n`,
    );
    const r = await sigil(["config", "check", file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok \(sections: proxy, router\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

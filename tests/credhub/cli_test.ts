/**
 * Cloud Foundry's real `credhub` CLI (credhub-cli c75b7a7d, from
 * ../shared/peers) drives `sigil credhub` unchanged: `api`, `login` with
 * flags and with the CREDHUB_* environment, `set`, `get`, `find`, `delete`,
 * the permission commands and `curl`. The flows follow credhub-cli
 * `commands/api.go`, `login.go` and `credhub/auth/uaa/client.go`.
 * @module
 */
import assert from "node:assert/strict";
import { decodeJwt, importPKCS8, SignJWT } from "jose";
import { parse as parseYaml } from "yaml";
import { startTestCredhub } from "../_helpers/credhub.ts";
import type { TestCredhub } from "../_helpers/credhub.ts";
import { credhubCli } from "../_helpers/credhub_cli.ts";
import type { CredhubCli } from "../_helpers/credhub_cli.ts";
import { runCommand } from "../_helpers/proc.ts";
import { addClient } from "../../lib/credhub/_clients.ts";

interface Session {
  t: TestCredhub;
  cli: CredhubCli;
  ca: string;
  secret: string;
  close(): Promise<void>;
}

/** A sigil credhub with a token endpoint, the CLI, and a broker client. */
async function session(): Promise<Session> {
  const t = await startTestCredhub({ uaa: true });
  const cli = await credhubCli(t.dir);
  const secret = await addClient(t.clientsFile, "broker", [
    "credhub.write",
    "credhub.read",
  ]);
  return { t, cli, ca: `${t.dir}/certs/ca.crt`, secret, close: t.close };
}

/** `credhub api` + `credhub login --client-name --client-secret`. */
async function login(s: Session): Promise<void> {
  const api = await s.cli.run(["api", s.t.ch.url, "--ca-cert", s.ca]);
  assert.equal(api.code, 0, api.stderr);
  const login = await s.cli.run([
    "login",
    "--client-name",
    "broker",
    "--client-secret",
    s.secret,
  ]);
  assert.equal(login.code, 0, login.stderr);
}

/** Runs the CLI and requires exit 0. */
async function ok(s: Session, args: string[], env?: Record<string, string>) {
  const r = await s.cli.run(args, env);
  assert.equal(r.code, 0, `credhub ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function cliConfig(s: Session) {
  return JSON.parse(
    await Deno.readTextFile(`${s.cli.home}/.credhub/config.json`),
  );
}

const NOT_FOUND =
  "The request could not be completed because the credential does not exist or you do not have sufficient authorization.";

Deno.test("credhub api + login --client-name/--client-secret: target and token saved under HOME, wrong secret is CF's UAA error", async () => {
  const s = await session();
  try {
    const api = await s.cli.run(["api", s.t.ch.url, "--ca-cert", s.ca]);
    assert.equal(api.code, 0, api.stderr);
    assert.equal(api.stdout, `Setting the target url: ${s.t.ch.url}\n`);
    let cfg = await cliConfig(s);
    assert.equal(cfg.ApiURL, s.t.ch.url);
    assert.equal(cfg.AuthURL, s.t.ch.url);

    const bad = await s.cli.run([
      "login",
      "--client-name",
      "broker",
      "--client-secret",
      "not-the-secret",
    ]);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr.trim(),
      "UAA error: invalid_client Bad credentials",
    );

    const good = await s.cli.run([
      "login",
      "--client-name",
      "broker",
      "--client-secret",
      s.secret,
    ]);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(good.stdout, "Login Successful\n");
    cfg = await cliConfig(s);
    const claims = decodeJwt(cfg.AccessToken);
    assert.equal(claims.sub, "broker");
    assert.equal(claims.scope, "credhub.write credhub.read");
    assert.equal(cfg.ServerVersion, "2.12.0");
    const mode = (await Deno.stat(`${s.cli.home}/.credhub/config.json`)).mode!;
    assert.equal(mode & 0o077, 0);

    // `api` without an argument prints the target; the stored token works.
    assert.equal(await ok(s, ["api"]), `${s.t.ch.url}\n`);
    const version = await ok(s, ["--version"]);
    assert.match(version, /Server Version: 2\.12\.0/);
  } finally {
    await s.close();
  }
});

Deno.test("credhub with CREDHUB_SERVER/CREDHUB_CLIENT/CREDHUB_SECRET/CREDHUB_CA_CERT: commands log in on their own, login says it is ignored", async () => {
  const s = await session();
  try {
    const env = {
      CREDHUB_SERVER: s.t.ch.url,
      CREDHUB_CLIENT: "broker",
      CREDHUB_SECRET: s.secret,
      CREDHUB_CA_CERT: s.ca,
    };
    const set = await ok(
      s,
      ["set", "-n", "/env/v", "-t", "value", "-v", "x"],
      env,
    );
    assert.match(set, /^name: \/env\/v$/m);
    assert.equal(await ok(s, ["get", "-n", "/env/v", "-q"], env), "x\n");
    // The CA may also be given as PEM text, as the CLI allows.
    const pem = await Deno.readTextFile(s.ca);
    assert.equal(
      await ok(s, ["get", "-n", "/env/v", "-q"], {
        ...env,
        CREDHUB_CA_CERT: pem,
      }),
      "x\n",
    );
    const login = await s.cli.run(["login"], env);
    assert.equal(login.code, 0, login.stderr);
    assert.match(
      login.stderr,
      /Login ignored as the CREDHUB_\* environment variables are present/,
    );
    // With env credentials the CLI stores no token.
    assert.equal((await cliConfig(s)).AccessToken, "");
    const wrong = await s.cli.run(["get", "-n", "/env/v"], {
      ...env,
      CREDHUB_SECRET: "wrong",
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /invalid_client Bad credentials/);
    // An untrusted server certificate is refused by the CLI itself.
    const other = `${s.t.dir}/other-ca.crt`;
    const gen = await runCommand("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${s.t.dir}/other.key`,
      "-out",
      other,
      "-subj",
      "/CN=other",
      "-days",
      "1",
    ]);
    assert.equal(gen.code, 0, gen.stderr);
    const untrusted = await s.cli.run(["get", "-n", "/env/v"], {
      ...env,
      CREDHUB_CA_CERT: other,
    });
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /certificate signed by unknown authority/);
  } finally {
    await s.close();
  }
});

Deno.test("credhub set value/json/password/user/certificate, get by name, --id, --versions, -q and -k", async () => {
  const s = await session();
  try {
    await login(s);
    await ok(s, ["set", "-n", "/t/value", "-t", "value", "-v", "v1"]);
    await ok(s, ["set", "-n", "/t/value", "-t", "value", "-v", "v2"]);
    await ok(s, [
      "set",
      "-n",
      "/t/json",
      "-t",
      "json",
      "-v",
      '{"a":{"b":[1,"ü"]}}',
    ]);
    await ok(s, ["set", "-n", "/t/password", "-t", "password", "-w", "pw-1"]);
    await ok(s, [
      "set",
      "-n",
      "/t/user",
      "-t",
      "user",
      "-z",
      "alice",
      "-w",
      "pw-2",
    ]);
    const cert = await s.t.pki.issueClient({ commonName: "svc" });
    await Deno.writeTextFile(`${s.t.dir}/svc.crt`, cert.certPem);
    await Deno.writeTextFile(`${s.t.dir}/svc.key`, cert.keyPem);
    // The CA that signed it (CredHub refuses a `ca` that did not).
    await Deno.writeTextFile(`${s.t.dir}/root.crt`, s.t.pki.intermediatePem);
    await ok(s, [
      "set",
      "-n",
      "/t/cert",
      "-t",
      "certificate",
      "-r",
      `${s.t.dir}/root.crt`,
      "-c",
      `${s.t.dir}/svc.crt`,
      "-p",
      `${s.t.dir}/svc.key`,
    ]);

    assert.equal(await ok(s, ["get", "-n", "/t/value", "-q"]), "v2\n");
    assert.equal(await ok(s, ["get", "-n", "t/password", "-q"]), "pw-1\n");
    assert.equal(
      await ok(s, ["get", "-n", "/t/user", "-k", "username"]),
      "alice\n",
    );
    assert.equal(
      await ok(s, ["get", "-n", "/t/user", "-k", "password"]),
      "pw-2\n",
    );
    assert.deepEqual(
      JSON.parse(await ok(s, ["get", "-n", "/t/json", "-j"])).value,
      { a: { b: [1, "ü"] } },
    );
    assert.equal(
      await ok(s, ["get", "-n", "/t/cert", "-k", "certificate"]),
      // The CLI prints the stored PEM (its final newline kept) and a newline.
      cert.certPem + "\n",
    );
    assert.equal(
      await ok(s, ["get", "-n", "/t/cert", "-k", "ca"]),
      s.t.pki.intermediatePem + "\n",
    );

    // By id: an older version is still there under its id.
    const versions = JSON.parse(
      await ok(s, ["get", "-n", "/t/value", "--versions", "2", "-j"]),
    ).versions;
    assert.deepEqual(versions.map((v: { value: string }) => v.value), [
      "v2",
      "v1",
    ]);
    const byId = JSON.parse(await ok(s, ["get", "--id", versions[1].id, "-j"]));
    assert.equal(byId.value, "v1");
    assert.equal(byId.name, "/t/value");
    const missing = await s.cli.run(["get", "--id", crypto.randomUUID()]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), NOT_FOUND);
    const unknown = await s.cli.run(["get", "-n", "/t/nothing"]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.trim(), NOT_FOUND);
  } finally {
    await s.close();
  }
});

Deno.test("credhub find --path and --name-like list what the client may read, newest first; no match is CF's error", async () => {
  const s = await session();
  try {
    await login(s);
    for (const n of ["/d/a/one", "/d/a/two", "/d/b/three", "/other/one"]) {
      await ok(s, ["set", "-n", n, "-t", "value", "-v", "x"]);
    }
    const names = (out: string) =>
      JSON.parse(out).credentials.map((c: { name: string }) => c.name);
    assert.deepEqual(names(await ok(s, ["find", "-p", "/d/a", "-j"])), [
      "/d/a/two",
      "/d/a/one",
    ]);
    assert.deepEqual(names(await ok(s, ["find", "-p", "/d", "-j"])), [
      "/d/b/three",
      "/d/a/two",
      "/d/a/one",
    ]);
    assert.deepEqual(names(await ok(s, ["find", "-n", "one", "-j"])), [
      "/other/one",
      "/d/a/one",
    ]);
    const none = await s.cli.run(["find", "-n", "zzz"]);
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr.trim(),
      "No credentials exist which match the provided parameters.",
    );
  } finally {
    await s.close();
  }
});

Deno.test("credhub delete removes every version; a second delete is CF's not-found error", async () => {
  const s = await session();
  try {
    await login(s);
    await ok(s, ["set", "-n", "/del/x", "-t", "password", "-w", "a"]);
    await ok(s, ["set", "-n", "/del/x", "-t", "password", "-w", "b"]);
    const id = JSON.parse(await ok(s, ["get", "-n", "/del/x", "-j"])).id;
    assert.equal(
      await ok(s, ["delete", "-n", "/del/x"]),
      "Credential successfully deleted\n",
    );
    for (
      const args of [["get", "-n", "/del/x"], ["get", "--id", id], [
        "delete",
        "-n",
        "/del/x",
      ]]
    ) {
      const r = await s.cli.run(args);
      assert.equal(r.code, 1, args.join(" "));
      assert.equal(r.stderr.trim(), NOT_FOUND, args.join(" "));
    }
  } finally {
    await s.close();
  }
});

Deno.test("credhub set-permission, get-permission, delete-permission on the v2 permissions API", async () => {
  const s = await session();
  try {
    await login(s);
    await ok(s, ["set", "-n", "/p/cred", "-t", "json", "-v", '{"k":"v"}']);
    const actor = `mtls-app:${crypto.randomUUID()}`;
    const set = JSON.parse(
      await ok(s, [
        "set-permission",
        "-a",
        actor,
        "-p",
        "/p/cred",
        "-o",
        "read,write",
        "-j",
      ]),
    );
    assert.equal(set.actor, actor);
    assert.equal(set.path, "/p/cred");
    assert.deepEqual(set.operations, ["read", "write"]);
    assert.match(set.uuid, /^[0-9a-f-]{36}$/);
    // Setting again updates the entry (the CLI PUTs by uuid).
    const again = JSON.parse(
      await ok(s, [
        "set-permission",
        "-a",
        actor,
        "-p",
        "/p/cred",
        "-o",
        "read",
        "-j",
      ]),
    );
    assert.equal(again.uuid, set.uuid);
    assert.deepEqual(again.operations, ["read"]);
    const got = JSON.parse(
      await ok(s, ["get-permission", "-a", actor, "-p", "/p/cred", "-j"]),
    );
    assert.deepEqual(got, again);
    // delete-permission has no --output-json: it prints YAML.
    const deleted = parseYaml(
      await ok(s, ["delete-permission", "-a", actor, "-p", "/p/cred"]),
    );
    assert.deepEqual(deleted, again);
    const gone = await s.cli.run([
      "get-permission",
      "-a",
      actor,
      "-p",
      "/p/cred",
    ]);
    assert.equal(gone.code, 1);
    assert.equal(
      gone.stderr.trim(),
      "The request could not be completed because the permission does not exist or you do not have sufficient authorization.",
    );
  } finally {
    await s.close();
  }
});

Deno.test("credhub curl -p /api/v1/data?... GET and PUT with -d, and -i shows the status", async () => {
  const s = await session();
  try {
    await login(s);
    const put = JSON.parse(
      await ok(s, [
        "curl",
        "-p",
        "/api/v1/data",
        "-X",
        "PUT",
        "-d",
        '{"name":"/curl/v","type":"value","value":"hi"}',
      ]),
    );
    assert.equal(put.name, "/curl/v");
    assert.equal(put.value, "hi");
    const got = JSON.parse(
      await ok(s, ["curl", "-p", "/api/v1/data?name=/curl/v&current=true"]),
    );
    assert.deepEqual(got.data.map((d: { id: string }) => d.id), [put.id]);
    const found = JSON.parse(
      await ok(s, ["curl", "-p", "/api/v1/data?path=/curl"]),
    );
    assert.deepEqual(found.credentials.map((c: { name: string }) => c.name), [
      "/curl/v",
    ]);
    const missing = await s.cli.run([
      "curl",
      "-i",
      "-p",
      "/api/v1/data?name=/curl/none",
    ]);
    assert.equal(missing.code, 0, missing.stderr);
    assert.match(missing.stdout, /^HTTP\/1\.1 404\n/);
    assert.match(
      missing.stdout,
      /"error": "The request could not be completed because the credential does not exist/,
    );
    const failed = await s.cli.run([
      "curl",
      "-f",
      "-p",
      "/api/v1/data?name=/curl/none",
    ]);
    assert.equal(failed.code, 22);
  } finally {
    await s.close();
  }
});

Deno.test("an expired token: sigil credhub answers CredHub's access_token_expired, the CLI tries to refresh and asks for a new login (credhub/auth/oauth.go)", async () => {
  const s = await session();
  try {
    await login(s);
    await ok(s, ["set", "-n", "/exp/v", "-t", "value", "-v", "x"]);
    const key = await importPKCS8(
      await Deno.readTextFile(s.t.tokenKeyFile),
      "ES256",
    );
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({
      scope: "credhub.read credhub.write",
      client_id: "broker",
    })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer("sigil-ca").setAudience("sigil").setSubject("broker")
      .setIssuedAt(now - 600).setExpirationTime(now - 300)
      .sign(key);
    const file = `${s.cli.home}/.credhub/config.json`;
    const cfg = await cliConfig(s);
    await Deno.writeTextFile(
      file,
      JSON.stringify({ ...cfg, AccessToken: expired }),
      { mode: 0o600 },
    );
    const r = await s.cli.run(["get", "-n", "/exp/v"]);
    assert.equal(r.code, 1);
    // Without access_token_expired the CLI would print the server's error as is.
    assert.match(
      r.stderr,
      /^Error getting token\. Your token may have expired and could not be refreshed\. Please try logging in again\./,
    );
    // Logging in again works.
    await login(s);
    assert.equal(await ok(s, ["get", "-n", "/exp/v", "-q"]), "x\n");
  } finally {
    await s.close();
  }
});

Deno.test("credhub logout revokes the token at DELETE /oauth/token/revoke/<jti>; sigil credhub refuses it at once (CredHub would accept it until it expires)", async () => {
  const s = await session();
  try {
    await login(s);
    const token = (await cliConfig(s)).AccessToken;
    assert.equal(await ok(s, ["logout"]), "Logout Successful\n");
    assert.equal((await cliConfig(s)).AccessToken, "revoked");
    const r = await runCommand("curl", [
      "-sS",
      "--cacert",
      s.ca,
      "-H",
      `authorization: bearer ${token}`,
      `${s.t.ch.url}/api/v1/data?path=/`,
    ]);
    assert.deepEqual(JSON.parse(r.stdout), {
      error: "invalid_token",
      error_description: "The access token has been revoked",
    });
    // The CLI itself now has no token to send.
    const after = await s.cli.run(["find", "-n", "x"]);
    assert.equal(after.code, 1);
    // Another client cannot revoke broker's token; a fresh login works.
    await login(s);
    const fresh = (await cliConfig(s)).AccessToken;
    const other = await addClient(s.t.clientsFile, "other", ["credhub.read"]);
    const tok = JSON.parse(
      (await runCommand("curl", [
        "-sS",
        "--cacert",
        s.ca,
        "-u",
        `other:${other}`,
        "-d",
        "grant_type=client_credentials",
        `${s.t.ch.url}/oauth/token`,
      ])).stdout,
    ).access_token;
    const denied = await runCommand("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "--cacert",
      s.ca,
      "-X",
      "DELETE",
      "-H",
      `authorization: bearer ${tok}`,
      `${s.t.ch.url}/oauth/token/revoke/${decodeJwt(fresh).jti}`,
    ]);
    assert.equal(denied.stdout, "403");
    const still = await s.cli.run([
      "set",
      "-n",
      "/lo/v",
      "-t",
      "value",
      "-v",
      "1",
    ]);
    assert.equal(still.code, 0, still.stderr);
  } finally {
    await s.close();
  }
});

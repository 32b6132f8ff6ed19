/**
 * What CF's real `credhub` CLI prints against `sigil credhub` is what it
 * prints against CredHub, so scripts that parse it keep working. Expected
 * shapes come from credhub-cli `commands/get_test.go`, `set_test.go`,
 * `find_test.go`, `set_permission_test.go` (`commands_suite_test.go`
 * templates), the CLI reference (docs.cloudfoundry.org/api/credhub/version/
 * credhub-cli: YAML by default, `--output-json` on request), and CredHub's
 * views: `CredentialView.kt` (`@JsonPropertyOrder("type",
 * "version_created_at", "id", "name", "metadata", "value")`),
 * `FindCredentialResult.kt`, `PermissionsV2View.kt`, timestamps as
 * `yyyy-MM-dd'T'HH:mm:ss'Z'` (`CredentialsControllerGetTest.kt`:
 * "2019-02-01T20:37:52Z").
 * @module
 */
import assert from "node:assert/strict";
import { startTestCredhub } from "../_helpers/credhub.ts";
import { credhubCli } from "../_helpers/credhub_cli.ts";
import { runCommand } from "../_helpers/proc.ts";
import { addClient } from "../../lib/credhub/_clients.ts";

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

async function session() {
  const t = await startTestCredhub({ uaa: true });
  const cli = await credhubCli(t.dir);
  const secret = await addClient(t.clientsFile, "broker", [
    "credhub.write",
    "credhub.read",
  ]);
  const ca = `${t.dir}/certs/ca.crt`;
  const env = {
    CREDHUB_SERVER: t.ch.url,
    CREDHUB_CLIENT: "broker",
    CREDHUB_SECRET: secret,
    CREDHUB_CA_CERT: ca,
  };
  const run = async (...args: string[]) => {
    const r = await cli.run(args, env);
    assert.equal(r.code, 0, `credhub ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  /** The server's own JSON for a GET, as curl receives it (raw key order). */
  const raw = async (path: string) => {
    const tok = await runCommand("curl", [
      "-sS",
      "--cacert",
      ca,
      "-d",
      "grant_type=client_credentials",
      "-d",
      "client_id=broker",
      "--data-urlencode",
      `client_secret=${secret}`,
      `${t.ch.url}/oauth/token`,
    ]);
    const token = JSON.parse(tok.stdout).access_token;
    const r = await runCommand("curl", [
      "-sS",
      "--cacert",
      ca,
      "-H",
      `authorization: bearer ${token}`,
      `${t.ch.url}${path}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  return { t, run, raw, close: t.close };
}

/** Checks a timestamp is CredHub's format and falls within [from, to] (s). */
function assertTime(ts: string, from: number, to: number) {
  assert.match(ts, TIME);
  const at = Date.parse(ts);
  assert.ok(
    at >= Math.floor(from / 1000) * 1000 && at <= to,
    `${ts} not within the call`,
  );
}

Deno.test("credhub get/set output: YAML field order and quoting, --output-json shape, version_created_at in CredHub's format (commands/get_test.go, set_test.go)", async () => {
  const s = await session();
  try {
    const before = Date.now();
    const setOut = await s.run(
      "set",
      "-n",
      "/o/value",
      "-t",
      "value",
      "-v",
      "potatoes",
    );
    const after = Date.now();
    const id = setOut.match(/^id: (\S+)$/m)![1]!;
    const ts = setOut.match(/^version_created_at: "(\S+)"$/m)![1]!;
    assertTime(ts, before, after);
    // set redacts the value, like CredHub's CLI (set_test.go "value: <redacted>").
    assert.equal(
      setOut,
      `id: ${id}\nname: /o/value\ntype: value\nvalue: <redacted>\nversion_created_at: "${ts}"\n\n`,
    );
    // get: same fields, the value shown; no metadata line when it is null
    // (get_test.go: ShouldNot(Say("metadata"))).
    assert.equal(
      await s.run("get", "-n", "/o/value"),
      `id: ${id}\nname: /o/value\ntype: value\nvalue: potatoes\nversion_created_at: "${ts}"\n\n`,
    );
    // --output-json: the CLI's field order, metadata null (defaultResponseJSON).
    assert.equal(
      await s.run("get", "-n", "/o/value", "-j"),
      `{\n\t"id": "${id}",\n\t"name": "/o/value",\n\t"type": "value",\n\t"value": "potatoes",\n\t"metadata": null,\n\t"version_created_at": "${ts}"\n}\n`,
    );
    const setJson = JSON.parse(
      await s.run("set", "-n", "/o/pw", "-t", "password", "-w", "pw", "-j"),
    );
    assert.deepEqual(Object.keys(setJson), [
      "id",
      "name",
      "type",
      "value",
      "metadata",
      "version_created_at",
    ]);
    assert.equal(setJson.value, "<redacted>");

    // The server's own JSON keeps CredentialView.kt's order.
    const body = await s.raw("/api/v1/data?name=/o/value&current=true");
    assert.equal(
      body,
      JSON.stringify({
        data: [{
          type: "value",
          version_created_at: ts,
          id,
          name: "/o/value",
          metadata: null,
          value: "potatoes",
        }],
      }),
    );

    // metadata (server >= 2.6.0 for the CLI): shown as a YAML map.
    await s.run(
      "set",
      "-n",
      "/o/meta",
      "-t",
      "value",
      "-v",
      "potatoes",
      "--metadata",
      '{"some":"metadata"}',
    );
    assert.match(
      await s.run("get", "-n", "/o/meta"),
      /^value: potatoes\nmetadata:\n {2}some: metadata\nversion_created_at: "[^"]+"\n$/m,
    );
  } finally {
    await s.close();
  }
});

Deno.test("credhub get output for json, password, user, certificate and --versions: CredHub's shapes (get_test.go, CLI reference)", async () => {
  const s = await session();
  try {
    await s.run(
      "set",
      "-n",
      "/o/json",
      "-t",
      "json",
      "-v",
      '{"foo":"bar","nested":{"a":1},"an":["array"]}',
    );
    const json = await s.run("get", "-n", "/o/json");
    const jts = json.match(/^version_created_at: "(\S+)"$/m)![1]!;
    const jid = json.match(/^id: (\S+)$/m)![1]!;
    // get_test.go "json-secret": nested YAML, keys sorted as the CLI's map.
    assert.equal(
      json,
      `id: ${jid}\nname: /o/json\ntype: json\nvalue:\n  an:\n  - array\n  foo: bar\n  nested:\n    a: 1\nversion_created_at: "${jts}"\n\n`,
    );

    await s.run("set", "-n", "/o/p", "-t", "password", "-w", "old-password");
    await s.run("set", "-n", "/o/p", "-t", "password", "-w", "new-password");
    const versions = await s.run("get", "-n", "/o/p", "--versions", "2");
    // get_test.go "--versions": a list under versions:, newest first.
    const m = [
      ...versions.matchAll(
        /- id: (\S+)\n {2}name: \/o\/p\n {2}type: password\n {2}value: (\S+)\n {2}version_created_at: "(\S+)"\n/g,
      ),
    ];
    assert.equal(versions.startsWith("versions:\n- id: "), true, versions);
    assert.deepEqual(m.map((x) => x[2]), ["new-password", "old-password"]);
    for (const x of m) assert.match(x[3]!, TIME);
    assert.equal(
      await s.run("get", "-n", "/o/p", "--versions", "2", "-q"),
      "versions:\n- new-password\n- old-password\n\n",
    );

    // get_test.go "user type": password, password_hash, username (sorted).
    await s.run(
      "set",
      "-n",
      "/o/user",
      "-t",
      "user",
      "-z",
      "alice",
      "-w",
      "pw",
    );
    const user = await s.run("get", "-n", "/o/user");
    assert.match(
      user,
      /^type: user\nvalue:\n {2}password: pw\n {2}password_hash: \$6\$[^\n]+\n {2}username: alice\nversion_created_at: "[^"]+"\n$/m,
    );

    const cert = await s.t.pki.issueClient({ commonName: "svc" });
    await Deno.writeTextFile(`${s.t.dir}/c.pem`, cert.certPem);
    await Deno.writeTextFile(`${s.t.dir}/k.pem`, cert.keyPem);
    // The CA that signed it (CredHub refuses a `ca` that did not).
    await Deno.writeTextFile(`${s.t.dir}/ca.pem`, s.t.pki.intermediatePem);
    await s.run(
      "set",
      "-n",
      "/o/cert",
      "-t",
      "certificate",
      "-r",
      `${s.t.dir}/ca.pem`,
      "-c",
      `${s.t.dir}/c.pem`,
      "-p",
      `${s.t.dir}/k.pem`,
    );
    const c = JSON.parse(await s.run("get", "-n", "/o/cert", "-j"));
    assert.deepEqual(Object.keys(c), [
      "id",
      "name",
      "type",
      "value",
      "metadata",
      "version_created_at",
    ]);
    assert.deepEqual(c.value, {
      ca: s.t.pki.intermediatePem,
      certificate: cert.certPem,
      private_key: cert.keyPem,
    });
    // YAML: PEM blocks as literal blocks (get_test.go "----begin----" cases).
    const y = await s.run("get", "-n", "/o/cert");
    assert.match(y, /^value:\n {2}ca: \|\n {4}-----BEGIN CERTIFICATE-----\n/m);
    assert.match(y, /^ {2}certificate: \|\n {4}-----BEGIN CERTIFICATE-----\n/m);
    assert.match(y, /^ {2}private_key: \|\n {4}-----BEGIN PRIVATE KEY-----\n/m);
  } finally {
    await s.close();
  }
});

Deno.test("credhub find and permission output: CredHub's shapes and dates (find_test.go, set_permission_test.go, PermissionsV2View.kt)", async () => {
  const s = await session();
  try {
    const t0 = Date.now();
    await s.run("set", "-n", "/f/dan.password", "-t", "password", "-w", "x");
    await s.run("set", "-n", "/f/deploy1/dan/id.key", "-t", "value", "-v", "y");
    const t1 = Date.now();
    const found = await s.run("find", "-n", "dan");
    const rows = [
      ...found.matchAll(/- name: (\S+)\n {2}version_created_at: "(\S+)"\n/g),
    ];
    assert.ok(found.startsWith("credentials:\n- name: "), found);
    assert.deepEqual(rows.map((r) => r[1]), [
      "/f/deploy1/dan/id.key",
      "/f/dan.password",
    ]);
    for (const r of rows) assertTime(r[2]!, t0, t1);
    // find's version_created_at is the newest version's.
    const latest = JSON.parse(
      await s.run("get", "-n", "/f/dan.password", "-j"),
    ).version_created_at;
    assert.equal(rows[1]![2], latest);
    assert.equal(
      await s.run("find", "-p", "/f/deploy1", "-j"),
      `{\n\t"credentials": [\n\t\t{\n\t\t\t"name": "/f/deploy1/dan/id.key",\n\t\t\t"version_created_at": "${
        rows[0]![2]
      }"\n\t\t}\n\t]\n}\n`,
    );
    // The server's find body: FindCredentialResult.kt order.
    assert.equal(
      await s.raw("/api/v1/data?path=/f/deploy1"),
      `{"credentials":[{"version_created_at":"${
        rows[0]![2]
      }","name":"/f/deploy1/dan/id.key"}]}`,
    );

    const actor = `mtls-app:${crypto.randomUUID()}`;
    const perm = await s.run(
      "set-permission",
      "-a",
      actor,
      "-p",
      "/f/dan.password",
      "-o",
      "read, write",
    );
    const uuid = perm.match(/^uuid: (\S+)$/m)![1]!;
    // set_permission_test.go: actor, operations, path, uuid as YAML.
    assert.equal(
      perm,
      `actor: ${actor}\noperations:\n- read\n- write\npath: /f/dan.password\nuuid: ${uuid}\n\n`,
    );
    assert.equal(
      await s.run("get-permission", "-a", actor, "-p", "/f/dan.password", "-j"),
      `{\n\t"actor": "${actor}",\n\t"operations": [\n\t\t"read",\n\t\t"write"\n\t],\n\t"path": "/f/dan.password",\n\t"uuid": "${uuid}"\n}\n`,
    );
    assert.equal(
      await s.raw(
        `/api/v2/permissions?path=/f/dan.password&actor=${actor}`,
      ),
      JSON.stringify({
        path: "/f/dan.password",
        operations: ["read", "write"],
        actor,
        uuid,
      }),
    );
  } finally {
    await s.close();
  }
});

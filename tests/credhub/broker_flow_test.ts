/**
 * The service-broker flow of CredHub's `docs/secure-service-credentials.md`
 * against `sigil credhub`, driven only by CF's real clients from
 * ../shared/peers: the operator registers the broker (`sigil credhub client
 * add`), the broker logs in with the `credhub` CLI, stores a json credential
 * under `/c/<broker>/<service>/<binding>/`, grants `read` to
 * `mtls-app:<app-guid>`, finds and gets it; the app side is
 * `credhub-interpolate` (CF's Go client, as Diego's launcher calls it:
 * buildpackapplifecycle `credhub/credhub.go`) with the instance's
 * certificate; revoking the permission makes the interpolation fail with
 * CredHub's not-found error.
 * @module
 */
import assert from "node:assert/strict";
import { startTestCredhub } from "../_helpers/credhub.ts";
import { credhubCli, installPeer } from "../_helpers/credhub_cli.ts";
import { runCommand, sigil } from "../_helpers/proc.ts";

const NOT_FOUND =
  "The request could not be completed because the credential does not exist or you do not have sufficient authorization.";

Deno.test("broker flow with the real credhub CLI and credhub-interpolate: login, set, grant read to mtls-app, find, get, interpolate, revoke", async () => {
  const t = await startTestCredhub({ uaa: true });
  try {
    const cli = await credhubCli(t.dir);
    const interpolate = await installPeer(t.dir, "credhub-interpolate");
    const run = async (...args: string[]) => {
      const r = await cli.run(args);
      assert.equal(r.code, 0, `credhub ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };

    // Operator: register the broker's client.
    const add = await sigil([
      "credhub",
      "client",
      "add",
      "p-mysql-broker",
      "--clients-file",
      t.clientsFile,
      "--scope",
      "credhub.write",
      "--scope",
      "credhub.read",
    ]);
    assert.equal(add.code, 0, add.stderr);
    const secret = add.stdout.match(/^secret: (\S+)$/m)![1]!;

    // Broker: log in, store the binding's credentials, grant the app read.
    await run("api", t.ch.url, "--ca-cert", `${t.dir}/certs/ca.crt`);
    assert.equal(
      await run(
        "login",
        "--client-name",
        "p-mysql-broker",
        "--client-secret",
        secret,
      ),
      "Login Successful\n",
    );
    const app = crypto.randomUUID();
    const binding = crypto.randomUUID();
    const name = `/c/p-mysql-broker/p-mysql/${binding}/credentials`;
    const value = {
      uri: "mysql://u:p@db.internal:3306/d",
      nested: { ports: [3306, 33060], tls: true },
      "clé": "välue ✓ 日本",
    };
    await run("set", "-n", name, "-t", "json", "-v", JSON.stringify(value));
    const other =
      `/c/p-mysql-broker/p-mysql/${crypto.randomUUID()}/credentials`;
    await run("set", "-n", other, "-t", "json", "-v", '{"not":"yours"}');
    const grant = await run(
      "set-permission",
      "-a",
      `mtls-app:${app}`,
      "-p",
      name,
      "-o",
      "read",
    );
    assert.match(
      grant,
      new RegExp(
        `^actor: mtls-app:${app}\noperations:\n- read\npath: ${name}\n`,
      ),
    );
    const found = JSON.parse(
      await run("find", "-p", "/c/p-mysql-broker", "-j"),
    );
    assert.deepEqual(
      found.credentials.map((c: { name: string }) => c.name).sort(),
      [name, other].sort(),
    );
    assert.deepEqual(
      JSON.parse(await run("get", "-n", name, "-j")).value,
      value,
    );

    // App: its instance certificate (OU app:<guid>) and the trust bundle.
    const inst = await t.pki.issueInstance({
      instanceId: crypto.randomUUID(),
      app,
    });
    await Deno.writeTextFile(`${t.dir}/instance.crt`, inst.certPem);
    await Deno.writeTextFile(`${t.dir}/instance.key`, inst.keyPem, {
      mode: 0o600,
    });
    const vcap = JSON.stringify({
      "p-mysql": [{
        name: "db",
        label: "p-mysql",
        credentials: { "credhub-ref": `((${name}))` },
      }],
    });
    const appEnv = {
      CREDHUB_API: t.ch.url,
      CF_INSTANCE_CERT: `${t.dir}/instance.crt`,
      CF_INSTANCE_KEY: `${t.dir}/instance.key`,
      CF_SYSTEM_CERT_PATH: `${t.dir}/certs`,
      VCAP_SERVICES: vcap,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    };
    const ok = await runCommand(interpolate, [], { env: appEnv });
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.deepEqual(JSON.parse(ok.stdout), {
      "p-mysql": [{ name: "db", label: "p-mysql", credentials: value }],
    });

    // A ref the app was never granted stays unreadable (not-found, never 403).
    const notMine = await runCommand(interpolate, [], {
      env: {
        ...appEnv,
        VCAP_SERVICES: JSON.stringify({
          "p-mysql": [{
            name: "x",
            credentials: { "credhub-ref": `((${other}))` },
          }],
        }),
      },
    });
    assert.equal(notMine.code, 1);
    assert.equal(
      notMine.stderr,
      `Unable to interpolate credhub references: ${NOT_FOUND}\n`,
    );

    // Broker: unbind revokes the permission; the app loses the credential.
    await run("delete-permission", "-a", `mtls-app:${app}`, "-p", name);
    const gone = await runCommand(interpolate, [], { env: appEnv });
    assert.equal(gone.code, 1, gone.stdout);
    // The launcher's message around CredHub's error body, nothing on stdout.
    assert.equal(gone.stdout, "");
    assert.equal(
      gone.stderr,
      `Unable to interpolate credhub references: ${NOT_FOUND}\n`,
    );
    // The broker still reads it: only the app's grant went away.
    assert.deepEqual(
      JSON.parse(await run("get", "-n", name, "-j")).value,
      value,
    );
  } finally {
    await t.close();
  }
});

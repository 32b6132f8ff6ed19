import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
} from "../../lib/pki/mod.ts";
import { openssl, sigil, SigilProcess } from "../_helpers/proc.ts";

Deno.test("sigil ca serve issues over real HTTPS; openssl verifies the chain and the identity", async () => {
  const dir = await Deno.makeTempDir();
  let ca: SigilProcess | undefined;
  try {
    const caDir = join(dir, "ca");
    assert.equal(
      (await sigil([
        "ca",
        "init",
        "--dir",
        caDir,
        "--trust-domain",
        "it.example",
      ])).code,
      0,
    );
    const again = await sigil(["ca", "init", "--dir", caDir]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already holds/);
    const tok = await sigil([
      "ca",
      "token",
      "--dir",
      caDir,
      "--subject",
      "cell-7",
      "--app",
      "app-*",
      "--space",
      "*",
      "--org",
      "*",
      "--cidr",
      "10.0.0.0/8",
      "--ttl",
      "1h",
    ]);
    assert.equal(tok.code, 0, tok.stderr);
    const token = tok.stdout.trim();
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    ca = new SigilProcess(["ca", "serve", "--config", join(dir, "sigil.yaml")]);
    const listening = await ca.waitForEvent("ca-listening");
    const url = `https://${listening.address}`;
    const rootPem = await Deno.readTextFile(join(caDir, "root.crt"));
    const client = Deno.createHttpClient({ caCerts: [rootPem] });
    try {
      const bundle = await (await fetch(`${url}/v1/bundle.pem`, { client }))
        .text();
      assert.equal(bundle, rootPem);
      const keys = await generateKeyPair();
      const res = await fetch(`${url}/v1/sign`, {
        client,
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          csr: await createCsr(keys),
          instance_id: "0d5e-instance",
          app: "app-1",
          space: "space-1",
          org: "org-1",
          ips: ["10.1.2.3"],
        }),
      });
      assert.equal(res.status, 201);
      const json = await res.json();
      await Deno.writeTextFile(join(dir, "leaf.pem"), json.certificate);
      await Deno.writeTextFile(join(dir, "chain.pem"), json.chain);
      await Deno.writeTextFile(
        join(dir, "leaf.key"),
        await exportPrivateKeyPem(keys),
      );
      const v = await openssl([
        "verify",
        "-CAfile",
        join(caDir, "root.crt"),
        "-untrusted",
        join(dir, "chain.pem"),
        join(dir, "leaf.pem"),
      ]);
      assert.equal(v.code, 0, v.stderr);
      const text = await openssl([
        "x509",
        "-in",
        join(dir, "leaf.pem"),
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName",
        "-nameopt",
        "RFC2253",
      ]);
      assert.match(
        text.stdout,
        /subject=OU=organization:org-1,OU=space:space-1,OU=app:app-1,CN=0d5e-instance/,
      );
      assert.match(
        text.stdout,
        /DNS:0d5e-instance, IP Address:10\.1\.2\.3, URI:spiffe:\/\/it\.example\/org\/org-1\/space\/space-1\/app\/app-1\/instance\/0d5e-instance/,
      );
      const mod1 = await openssl([
        "x509",
        "-in",
        join(dir, "leaf.pem"),
        "-noout",
        "-pubkey",
      ]);
      const mod2 = await openssl([
        "pkey",
        "-in",
        join(dir, "leaf.key"),
        "-pubout",
      ]);
      assert.equal(
        mod1.stdout,
        mod2.stdout,
        "certificate carries the CSR's key",
      );

      const denied = await fetch(`${url}/v1/sign`, {
        client,
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({
          csr: await createCsr(keys),
          instance_id: "x",
          app: "web",
          space: "s",
          org: "o",
          ips: [],
        }),
      });
      assert.equal(denied.status, 403);
      await denied.body?.cancel();
      // `systemctl reload` (SIGHUP) must not end the CA: it says to restart.
      ca.child.kill("SIGHUP");
      const hup = await ca.waitForEvent("reload-not-supported");
      assert.match(String(hup.hint), /restart/);
      const after = await fetch(`${url}/v1/bundle.pem`, { client });
      assert.equal(await after.text(), rootPem);
    } finally {
      client.close();
    }
    const stopped = await ca.stop("SIGTERM");
    ca = undefined;
    assert.equal(stopped.code, 0);

    const ledger = await sigil(["ca", "ledger", "--dir", caDir, "--json"]);
    assert.equal(ledger.code, 0, ledger.stderr);
    const rows = ledger.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => r.result), ["issued", "refused"]);
    assert.equal(rows[0].instance_id, "0d5e-instance");
    assert.equal(rows[0].caller, "cell-7");
    const one = await sigil([
      "ca",
      "ledger",
      "--dir",
      caDir,
      "--instance",
      "x",
      "--json",
    ]);
    assert.equal(one.stdout.trim().split("\n").length, 1);

    const insp = await sigil(["inspect", join(dir, "leaf.pem"), "--json"]);
    assert.equal(insp.code, 0);
    assert.equal(JSON.parse(insp.stdout).identity.instance_id, "0d5e-instance");
  } finally {
    if (ca) await ca.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca serve refuses to start when a key file is group-readable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const caDir = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    await Deno.chmod(join(caDir, "root.key"), 0o644);
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    const r = await sigil(["ca", "serve", "--config", join(dir, "sigil.yaml")]);
    assert.equal(r.code, 1);
    // The CA logs JSON: its start failure is one start-failed line.
    const line = JSON.parse(r.stderr.trim().split("\n").at(-1)!);
    assert.equal(line.event, "start-failed");
    assert.match(line.error, /root\.key" is readable by group or others/);
    assert.match(line.error, /chmod 600/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca issue writes an offline certificate and key with safe modes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const caDir = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const r = await sigil([
      "ca",
      "issue",
      "--dir",
      caDir,
      "--instance",
      "i-9",
      "--app",
      "a",
      "--space",
      "s",
      "--org",
      "o",
      "--ip",
      "10.0.0.9",
      "--validity",
      "2h",
      "--out",
      join(dir, "out"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      (await Deno.stat(join(dir, "out", "instance.key"))).mode! & 0o777,
      0o600,
    );
    const v = await openssl([
      "verify",
      "-CAfile",
      join(caDir, "root.crt"),
      "-untrusted",
      join(caDir, "intermediate.crt"),
      join(dir, "out", "instance.crt"),
    ]);
    assert.equal(v.code, 0, v.stderr);
    const bad = await sigil([
      "ca",
      "issue",
      "--dir",
      caDir,
      "--instance",
      "a/b",
      "--app",
      "a",
      "--space",
      "s",
      "--org",
      "o",
      "--out",
      join(dir, "o2"),
    ]);
    // A bad --instance is a usage mistake: exit 2 (README's exit codes).
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /instance_id/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

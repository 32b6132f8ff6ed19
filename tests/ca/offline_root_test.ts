/**
 * Offline root (issue 15): `sigil ca init --root-key-out` / `--offline-root`;
 * `ca issue` and `ca serve` run with only the intermediate key and the chain.
 * openssl is the independent verifier.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
} from "../../lib/pki/mod.ts";
import { openssl, sigil, SigilProcess } from "../_helpers/proc.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("sigil ca init --root-key-out keeps the root key out of the CA dir; issue and serve work without it and openssl verifies the leaves", async () => {
  const dir = await Deno.makeTempDir();
  let ca: SigilProcess | undefined;
  try {
    const caDir = join(dir, "ca");
    const offline = join(dir, "usb", "root.key");
    await Deno.mkdir(join(dir, "usb"));
    const inside = await sigil([
      "ca",
      "init",
      "--dir",
      caDir,
      "--root-key-out",
      join(caDir, "r.key"),
    ]);
    assert.equal(inside.code, 2, inside.stderr);
    assert.match(inside.stderr, /inside the CA directory/);
    const init = await sigil([
      "ca",
      "init",
      "--dir",
      caDir,
      "--trust-domain",
      "off.example",
      "--root-key-out",
      offline,
    ]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /keep it offline/);
    assert.equal(await exists(join(caDir, "root.key")), false);
    assert.equal((await Deno.stat(offline)).mode! & 0o777, 0o600);
    assert.match(await Deno.readTextFile(offline), /BEGIN PRIVATE KEY/);
    // The offline key is the root's: openssl derives the same public key.
    const rootPub = await openssl([
      "x509",
      "-in",
      join(caDir, "root.crt"),
      "-noout",
      "-pubkey",
    ]);
    const keyPub = await openssl(["pkey", "-in", offline, "-pubout"]);
    assert.equal(keyPub.stdout, rootPub.stdout);

    const issued = await sigil([
      "ca",
      "issue",
      "--dir",
      caDir,
      "--instance",
      "off-1",
      "--app",
      "a",
      "--space",
      "s",
      "--org",
      "o",
      "--out",
      join(dir, "out"),
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    const v1 = await openssl([
      "verify",
      "-CAfile",
      join(caDir, "root.crt"),
      "-untrusted",
      join(caDir, "intermediate.crt"),
      join(dir, "out", "instance.crt"),
    ]);
    assert.equal(v1.code, 0, v1.stderr);

    const tok = await sigil([
      "ca",
      "token",
      "--dir",
      caDir,
      "--subject",
      "cell-1",
      "--app",
      "*",
      "--space",
      "*",
      "--org",
      "*",
      "--ttl",
      "1h",
    ]);
    assert.equal(tok.code, 0, tok.stderr);
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    ca = new SigilProcess(["ca", "serve", "--config", join(dir, "sigil.yaml")]);
    const listening = await ca.waitForEvent("ca-listening");
    const rootPem = await Deno.readTextFile(join(caDir, "root.crt"));
    const client = Deno.createHttpClient({ caCerts: [rootPem] });
    try {
      const keys = await generateKeyPair();
      const res = await fetch(`https://${listening.address}/v1/sign`, {
        client,
        method: "POST",
        headers: {
          authorization: `Bearer ${tok.stdout.trim()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          csr: await createCsr(keys),
          instance_id: "off-2",
          app: "a",
          space: "s",
          org: "o",
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
      const v2 = await openssl([
        "verify",
        "-CAfile",
        join(caDir, "root.crt"),
        "-untrusted",
        join(dir, "chain.pem"),
        join(dir, "leaf.pem"),
      ]);
      assert.equal(v2.code, 0, v2.stderr);
    } finally {
      client.close();
    }
    assert.ok(
      !ca.lines.some((l) => l.includes('"root-key-online"')),
      "no root-key warning for an offline root",
    );
  } finally {
    await ca?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sigil ca init --offline-root prints where to move root.key; after it is moved, issue works and serve warns no more", async () => {
  const dir = await Deno.makeTempDir();
  let ca: SigilProcess | undefined;
  try {
    const caDir = join(dir, "ca");
    const init = await sigil(["ca", "init", "--dir", caDir, "--offline-root"]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(
      init.stdout,
      new RegExp(`move ${join(caDir, "root.key")} to offline storage`),
    );
    assert.match(init.stdout, /sigil ca intermediate renew/);
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    // Still online: serve says so.
    ca = new SigilProcess(["ca", "serve", "--config", join(dir, "sigil.yaml")]);
    const warn = await ca.waitForEvent("root-key-online");
    assert.equal(warn.path, join(caDir, "root.key"));
    await ca.waitForEvent("ca-listening");
    await ca.stop();
    ca = undefined;
    await Deno.rename(join(caDir, "root.key"), join(dir, "root.key"));
    const issued = await sigil([
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
      "--out",
      join(dir, "out"),
    ]);
    assert.equal(issued.code, 0, issued.stderr);
    const v = await openssl([
      "verify",
      "-CAfile",
      join(caDir, "root.crt"),
      "-untrusted",
      join(caDir, "intermediate.crt"),
      join(dir, "out", "instance.crt"),
    ]);
    assert.equal(v.code, 0, v.stderr);
    ca = new SigilProcess(["ca", "serve", "--config", join(dir, "sigil.yaml")]);
    await ca.waitForEvent("ca-listening");
    assert.ok(!ca.lines.some((l) => l.includes('"root-key-online"')));
  } finally {
    await ca?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

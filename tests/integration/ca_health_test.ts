import assert from "node:assert/strict";
import { join } from "node:path";
import { CA_FILES, Ledger } from "../../lib/ca/mod.ts";
import { createCsr, generateKeyPair } from "../../lib/pki/mod.ts";
import { sigil, SigilProcess } from "../_helpers/proc.ts";

/**
 * File permissions bind root only without CAP_DAC_OVERRIDE: as root (this
 * machine, many CI runners) the CA runs with that capability dropped from
 * its bounding set, so a 0400 ledger is as unwritable to it as to the
 * `sigil` user of the deploy guide.
 */
const WITHOUT_DAC_OVERRIDE = Deno.uid() === 0
  ? [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
  ]
  : [];

Deno.test("ca serve: /healthz is 503 naming the ledger while it cannot be written (chmod 0400), and 200 again once it can, without a restart", async () => {
  const dir = await Deno.makeTempDir();
  let ca: SigilProcess | undefined;
  try {
    const caDir = join(dir, "ca");
    assert.equal(
      (await sigil(["ca", "init", "--dir", caDir, "--trust-domain", "h.ex"]))
        .code,
      0,
    );
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
      "--cidr",
      "10.0.0.0/8",
    ]);
    assert.equal(tok.code, 0, tok.stderr);
    const ledgerPath = join(caDir, CA_FILES.ledger);
    Ledger.open(ledgerPath).close();
    await Deno.chmod(ledgerPath, 0o400);
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:0"\n`,
    );
    ca = new SigilProcess(
      ["ca", "serve", "--config", join(dir, "sigil.yaml")],
      { prefix: WITHOUT_DAC_OVERRIDE },
    );
    const url = `https://${(await ca.waitForEvent("ca-listening")).address}`;
    const tls = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(join(caDir, "root.crt"))],
    });
    const sign = async () =>
      await fetch(`${url}/v1/sign`, {
        client: tls,
        method: "POST",
        headers: {
          authorization: `Bearer ${tok.stdout.trim()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          csr: await createCsr(await generateKeyPair()),
          instance_id: "i-health",
          app: "a",
          space: "s",
          org: "o",
          ips: ["10.0.0.9"],
        }),
      });
    try {
      const bad = await fetch(`${url}/healthz`, { client: tls });
      assert.equal(bad.status, 503);
      const json = await bad.json();
      assert.equal(json.status, "failing");
      assert.equal(json.check, "ledger");
      assert.ok(json.reason.includes(ledgerPath), json.reason);
      assert.match(json.reason, /readonly/);
      const logged = await ca.waitForEvent("ca-unhealthy");
      assert.match(String(logged.reason), /readonly/);
      const refused = await sign();
      assert.equal(refused.status, 500);
      assert.equal((await refused.json()).error.code, "ERR_CA_LEDGER");

      assert.match(json.reason, /-wal and -shm files writable/);
      // SQLite made the -wal and -shm files with the ledger's mode.
      for (const f of [ledgerPath, `${ledgerPath}-wal`, `${ledgerPath}-shm`]) {
        await Deno.chmod(f, 0o600);
      }
      const good = await fetch(`${url}/healthz`, { client: tls });
      assert.equal(good.status, 200, await good.clone().text());
      assert.deepEqual(await good.json(), { status: "ok" });
      await ca.waitForEvent("ca-healthy");
      assert.equal((await sign()).status, 201);
    } finally {
      tls.close();
    }
  } finally {
    await ca?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { exportJWK, generateKeyPair } from "jose";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import { freePort } from "../_helpers/ports.ts";

/** Polls `url` until it answers (bounded); `client` for HTTPS. */
async function waitUp(url: string, client?: Deno.HttpClient): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(url, { client });
      await res.body?.cancel();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} never answered`);
}

function levels(proc: SigilProcess): string[] {
  return proc.lines.flatMap((l) => {
    try {
      return [String(JSON.parse(l).level)];
    } catch {
      return [];
    }
  });
}

Deno.test("ca serve with log_level warn: no info lines, and a refused sign is logged with the client address", async () => {
  const dir = await Deno.makeTempDir();
  let ca: SigilProcess | undefined;
  try {
    const caDir = join(dir, "ca");
    assert.equal((await sigil(["ca", "init", "--dir", caDir])).code, 0);
    const port = freePort();
    await Deno.writeTextFile(
      join(dir, "sigil.yaml"),
      `ca:\n  dir: ${caDir}\n  listen: "127.0.0.1:${port}"\n  log_level: warn\n`,
    );
    ca = new SigilProcess(["ca", "serve", "--config", join(dir, "sigil.yaml")]);
    const client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(join(caDir, "root.crt"))],
    });
    try {
      const url = `https://127.0.0.1:${port}`;
      await waitUp(`${url}/healthz`, client);
      const res = await fetch(`${url}/v1/sign`, {
        client,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(res.status, 401);
      await res.body?.cancel();
      const refused = await ca.waitForEvent("cert-refused");
      assert.equal(refused.client, "127.0.0.1");
      assert.equal(refused.level, "warn");
    } finally {
      client.close();
    }
    await ca.stop();
    assert.ok(levels(ca).length > 0);
    assert.ok(
      !levels(ca).includes("info"),
      `no info line at log_level warn:\n${ca.lines.join("\n")}`,
    );
  } finally {
    await ca?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("router with log_level warn: no info lines, and a refused registration is logged with the client address", async () => {
  const dir = await Deno.makeTempDir();
  const { publicKey } = await generateKeyPair("ES256", { extractable: true });
  await Deno.writeTextFile(
    join(dir, "token.jwk"),
    JSON.stringify(await exportJWK(publicKey)),
  );
  const apiPort = freePort();
  await Deno.writeTextFile(
    join(dir, "sigil.yaml"),
    [
      "router:",
      "  drain_wait: 0s",
      "  listen: 127.0.0.1:0",
      "  api:",
      `    listen: 127.0.0.1:${apiPort}`,
      `    public_key_file: ${join(dir, "token.jwk")}`,
      "  access_log:",
      "    enabled: false",
      "  log_level: warn",
      "",
    ].join("\n"),
  );
  const router = new SigilProcess([
    "router",
    "--config",
    join(dir, "sigil.yaml"),
  ]);
  try {
    const api = `http://127.0.0.1:${apiPort}`;
    await waitUp(`${api}/healthz`);
    const res = await fetch(`${api}/v1/register`, {
      method: "POST",
      headers: { authorization: "Bearer not.a.jwt" },
      body: "{}",
    });
    assert.equal(res.status, 401);
    await res.body?.cancel();
    const refused = await router.waitForEvent("api-auth-refused");
    assert.equal(refused.client, "127.0.0.1");
    await router.stop();
    assert.ok(
      !levels(router).includes("info"),
      `no info line at log_level warn:\n${router.lines.join("\n")}`,
    );
  } finally {
    await router.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

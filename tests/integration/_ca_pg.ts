/**
 * Shared setup of the PostgreSQL CA tests: a CA directory, a cert.issue
 * token, a config whose `ca.store` is the throw-away cluster, and replicas
 * of `sigil ca serve` started from it.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createCsr, generateKeyPair } from "../../lib/pki/mod.ts";
import { sigil, SigilProcess } from "../_helpers/proc.ts";
import type { PostgresCluster } from "../_helpers/postgres.ts";

/** A CA directory plus config on one cluster. */
export interface PgCa {
  dir: string;
  caDir: string;
  config: string;
  token: string;
  tokenFile: string;
  rootPem: string;
}

/** `sigil ca init` + `sigil ca token` + a config naming `pg` as the store. */
export async function setUpPgCa(
  dir: string,
  pg: PostgresCluster,
  extra = "",
): Promise<PgCa> {
  const caDir = join(dir, "ca");
  const init = await sigil([
    "ca",
    "init",
    "--dir",
    caDir,
    "--trust-domain",
    "pg.ex",
  ]);
  assert.equal(init.code, 0, init.stderr);
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
  const tokenFile = join(dir, "token");
  await Deno.writeTextFile(tokenFile, tok.stdout.trim() + "\n", {
    mode: 0o600,
  });
  const config = join(dir, "sigil.yaml");
  await Deno.writeTextFile(
    config,
    `ca:
  dir: ${caDir}
  listen: "127.0.0.1:0"
  rate_limit: { per_second: 10000, burst: 10000 }
  store:
    url: ${pg.url}
    password_file: ${pg.passwordFile}
${extra}`,
  );
  return {
    dir,
    caDir,
    config,
    token: tok.stdout.trim(),
    tokenFile,
    rootPem: await Deno.readTextFile(join(caDir, "root.crt")),
  };
}

/** A running replica. */
export interface Replica {
  proc: SigilProcess;
  url: string;
}

/** Starts `sigil ca serve` (optionally on a fixed `listen`). */
export async function startReplica(
  ca: PgCa,
  listen?: string,
): Promise<Replica> {
  let config = ca.config;
  if (listen) {
    config = join(ca.dir, `sigil-${listen.replace(/\W/g, "_")}.yaml`);
    await Deno.writeTextFile(
      config,
      (await Deno.readTextFile(ca.config)).replace(
        '"127.0.0.1:0"',
        `"${listen}"`,
      ),
    );
  }
  const proc = new SigilProcess(["ca", "serve", "--config", config]);
  const ev = await proc.waitForEvent("ca-listening", 60_000);
  return { proc, url: `https://${ev.address}` };
}

/** One `POST /v1/sign` for `instance`. */
export async function signOnce(
  client: Deno.HttpClient,
  url: string,
  token: string,
  instance: string,
): Promise<Response> {
  return await fetch(`${url}/v1/sign`, {
    client,
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({
      csr: await createCsr(await generateKeyPair()),
      instance_id: instance,
      app: "a",
      space: "s",
      org: "o",
      ips: ["10.0.0.9"],
    }),
  });
}

/** Polls `check` every 200 ms until it returns true (bounded). */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

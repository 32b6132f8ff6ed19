/**
 * A real `sigil credhub` for tests: HTTPS on a free port, a test PKI whose
 * root is the trusted CA bundle (also as `certs/ca.crt`, the
 * `CF_SYSTEM_CERT_PATH` layout), and bearer tokens from a local ES256 key.
 * @module
 */
import { request } from "node:https";
import type { Agent } from "node:https";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { createTestPki } from "./pki.ts";
import type { TestPki } from "./pki.ts";
import { freePort } from "./ports.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import type { CredhubSection } from "../../lib/config/mod.ts";
import { startCredhub } from "../../lib/credhub/mod.ts";
import type { RunningCredhub } from "../../lib/credhub/mod.ts";
import { silentLogger } from "../../lib/observe/mod.ts";

/** The files of a test CredHub, ready for `sigil credhub --config`. */
export interface TestCredhubFiles {
  /** Temp dir with `certs/ca.crt` (the root) and the server's files. */
  dir: string;
  pki: TestPki;
  /** `DIR/config.yaml`: a config with only the `credhub` section. */
  configPath: string;
  config: CredhubSection;
  /** A token for `sub: broker` with the given space-separated scopes. */
  token(scope: string): Promise<string>;
}

/** A running test CredHub and what talks to it. */
export interface TestCredhub extends TestCredhubFiles {
  ch: RunningCredhub;
  close(): Promise<void>;
}

/**
 * Writes a fresh PKI, token key and `config.yaml` for `sigil credhub`
 * (listening on a free port); `revokedSerials` become its deny list
 * (`revoked_serials_file`).
 *
 * @example
 * ```ts ignore
 * const f = await prepareTestCredhub();
 * const p = new SigilProcess(["credhub", "--config", f.configPath]);
 * ```
 */
export async function prepareTestCredhub(
  options: { revokedSerials?: string[] } = {},
): Promise<TestCredhubFiles> {
  const dir = await Deno.makeTempDir();
  const pki = await createTestPki();
  const server = await pki.issueClient({
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
  });
  await Deno.writeTextFile(`${dir}/server.crt`, server.certPem);
  await Deno.writeTextFile(`${dir}/server.key`, server.keyPem, { mode: 0o600 });
  await Deno.mkdir(`${dir}/certs`);
  await Deno.writeTextFile(`${dir}/certs/ca.crt`, pki.rootPem);
  const tk = await generateKeyPair("ES256");
  await Deno.writeTextFile(`${dir}/token.pub`, await exportSPKI(tk.publicKey));
  const revoked = options.revokedSerials
    ? `  revoked_serials_file: ${dir}/revoked.txt\n`
    : "";
  if (options.revokedSerials) {
    await Deno.writeTextFile(
      `${dir}/revoked.txt`,
      options.revokedSerials.join("\n") + "\n",
    );
  }
  const yaml = `credhub:
  listen: 127.0.0.1:${freePort()}
  database: ${dir}/ch.db
  keys_dir: ${dir}/keys
  tls_cert_file: ${dir}/server.crt
  tls_key_file: ${dir}/server.key
  trusted_cas_file: ${dir}/certs/ca.crt
  public_key_file: ${dir}/token.pub
${revoked}`;
  await Deno.writeTextFile(`${dir}/config.yaml`, yaml);
  return {
    dir,
    pki,
    configPath: `${dir}/config.yaml`,
    config: parseConfig(yaml).credhub!,
    token: (scope) =>
      new SignJWT({ scope, client_id: "broker" })
        .setProtectedHeader({ alg: "ES256" })
        .setIssuer("sigil-ca").setAudience("sigil").setSubject("broker")
        .setExpirationTime("1h")
        .sign(tk.privateKey),
  };
}

/**
 * Starts `sigil credhub` in this process on the files of
 * {@linkcode prepareTestCredhub}.
 *
 * @example
 * ```ts ignore
 * const t = await startTestCredhub();
 * try { ... } finally { await t.close(); }
 * ```
 */
export async function startTestCredhub(
  options: { revokedSerials?: string[] } = {},
): Promise<TestCredhub> {
  const files = await prepareTestCredhub(options);
  const ch = await startCredhub(files.config, { logger: silentLogger });
  return {
    ...files,
    ch,
    async close() {
      await ch.close();
      await Deno.remove(files.dir, { recursive: true });
    },
  };
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** Options of {@linkcode credhubCall}: a bearer token and/or a client certificate. */
export interface CredhubCallOptions {
  token?: string;
  cert?: string;
  key?: string;
  /** CA bundle trusted for the server. */
  ca: string;
  body?: unknown;
  /** A keep-alive agent; default: a new connection. */
  agent?: Agent;
}

/**
 * One HTTPS request to a CredHub (SNI `localhost`), JSON in and out.
 *
 * @example
 * ```ts ignore
 * const r = await credhubCall(url, "GET", "/info", { ca });
 * ```
 */
export function credhubCall(
  url: string,
  method: string,
  path: string,
  o: CredhubCallOptions,
): Promise<{ status: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({
      hostname: u.hostname,
      port: u.port,
      path,
      method,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      servername: "localhost",
      agent: o.agent ?? false,
      headers: {
        ...(o.token ? { authorization: `bearer ${o.token}` } : {}),
        "content-type": "application/json",
      },
    }, (res) => {
      let t = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (t += c));
      res.on("error", reject);
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode!, body: t ? JSON.parse(t) : null });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on("error", reject);
    req.end(o.body === undefined ? undefined : JSON.stringify(o.body));
  });
}

/**
 * A real `sigil credhub` for tests: HTTPS on a free port, a test PKI whose
 * root is the trusted CA bundle (also as `certs/ca.crt`, the
 * `CF_SYSTEM_CERT_PATH` layout), and bearer tokens from a local ES256 key.
 * @module
 */
import { request } from "node:https";
import type { Agent } from "node:https";
import { exportPKCS8, exportSPKI, generateKeyPair, SignJWT } from "jose";
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
  /** With `uaa`: the clients file and the token key file (the CA's token.key). */
  clientsFile: string;
  tokenKeyFile: string;
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
  options: { revokedSerials?: string[]; uaa?: boolean } = {},
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
  const tk = await generateKeyPair("ES256", { extractable: true });
  await Deno.writeTextFile(`${dir}/token.pub`, await exportSPKI(tk.publicKey));
  // The token endpoint signs with the same key, as with the CA's token.key.
  await Deno.writeTextFile(
    `${dir}/token.key`,
    await exportPKCS8(tk.privateKey),
    {
      mode: 0o600,
    },
  );
  const uaa = options.uaa
    ? `  uaa:\n    clients_file: ${dir}/clients.json\n    token_key_file: ${dir}/token.key\n`
    : "";
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
${revoked}${uaa}`;
  await Deno.writeTextFile(`${dir}/config.yaml`, yaml);
  return {
    dir,
    pki,
    configPath: `${dir}/config.yaml`,
    config: parseConfig(yaml).credhub!,
    clientsFile: `${dir}/clients.json`,
    tokenKeyFile: `${dir}/token.key`,
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
  options: { revokedSerials?: string[]; uaa?: boolean } = {},
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

/** A CredHub answer read to the end (the body as sent, not re-encoded). */
export interface CredhubAnswer {
  status: number;
  contentType: string;
  text: string;
}

/** Who calls and what is sent, for {@linkcode credhubRequest}. */
export interface CredhubCall {
  token?: string;
  cert?: string;
  key?: string;
  /** Sent as given when a string, else as JSON. */
  body?: unknown;
  /** A keep-alive agent; default: a new connection per request. */
  agent?: Agent;
}

/**
 * One HTTPS request to a test CredHub, as a broker (`token`) or as an app
 * instance (`cert` + `key`).
 *
 * @example
 * ```ts ignore
 * const r = await credhubRequest(t, "POST", "/api/v1/interpolate", { cert, key, body: "{}" });
 * ```
 */
export function credhubRequest(
  t: TestCredhub,
  method: string,
  path: string,
  o: CredhubCall = {},
): Promise<CredhubAnswer> {
  return httpsRequest(t.ch.url, t.pki.rootPem, method, path, o);
}

/**
 * {@linkcode credhubRequest} by URL and CA bundle (SNI `localhost`).
 *
 * @example
 * ```ts ignore
 * const r = await httpsRequest(ch.url, pki.rootPem, "GET", "/info");
 * ```
 */
export function httpsRequest(
  url: string,
  ca: string,
  method: string,
  path: string,
  o: CredhubCall = {},
): Promise<CredhubAnswer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({
      hostname: u.hostname,
      port: u.port,
      path,
      method,
      ca,
      cert: o.cert,
      key: o.key,
      servername: "localhost",
      agent: o.agent ?? false,
      headers: {
        ...(o.token ? { authorization: `bearer ${o.token}` } : {}),
        "content-type": "application/json",
      },
    }, (res) => {
      const parts: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => parts.push(c));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers["content-type"] ?? ""),
          text: new TextDecoder().decode(concat(parts)),
        }));
    });
    req.on("error", reject);
    req.end(
      o.body === undefined
        ? undefined
        : typeof o.body === "string"
        ? o.body
        : JSON.stringify(o.body),
    );
  });
}

// deno-lint-ignore no-explicit-any
type Json = any;

/**
 * {@linkcode httpsRequest} with the answer parsed as JSON (`null` when
 * empty); `o.ca` is the CA bundle trusted for the server.
 *
 * @example
 * ```ts ignore
 * const r = await credhubCall(url, "GET", "/api/v1/data?name=/a", { token, ca });
 * ```
 */
export async function credhubCall(
  url: string,
  method: string,
  path: string,
  o: CredhubCall & { ca: string },
): Promise<{ status: number; body: Json }> {
  const r = await httpsRequest(url, o.ca, method, path, o);
  return { status: r.status, body: r.text ? JSON.parse(r.text) : null };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Stores a credential as the broker and grants `read` to each app's
 * `mtls-app:<guid>` actor (the broker flow of CredHub
 * `docs/secure-service-credentials.md`).
 *
 * @example
 * ```ts ignore
 * await brokerStore(t, broker, "/c/b/s/1/creds", "json", { pw: "x" }, [appGuid]);
 * ```
 */
export async function brokerStore(
  t: TestCredhub,
  token: string,
  name: string,
  type: string,
  value: unknown,
  readers: string[] = [],
): Promise<void> {
  const set = await credhubRequest(t, "PUT", "/api/v1/data", {
    token,
    body: { name, type, value },
  });
  if (set.status !== 200) {
    throw new Error(`Cannot store "${name}": ${set.status} ${set.text}`);
  }
  for (const app of readers) {
    const g = await credhubRequest(t, "POST", "/api/v2/permissions", {
      token,
      body: { actor: `mtls-app:${app}`, path: name, operations: ["read"] },
    });
    if (g.status !== 201) {
      throw new Error(
        `Cannot grant "${name}" to ${app}: ${g.status} ${g.text}`,
      );
    }
  }
}

/** An instance's `CF_INSTANCE_CERT` / `CF_INSTANCE_KEY` files. */
export interface InstanceFiles {
  cert: string;
  key: string;
}

/**
 * Issues an instance certificate of `app` (from `pki`, the server's own by
 * default) and writes it and its key (0600) into the CredHub's temp dir.
 *
 * @example
 * ```ts ignore
 * const a = await instanceFiles(t, appGuid);
 * ```
 */
export async function instanceFiles(
  t: TestCredhub,
  app: string,
  pki: Pick<TestPki, "issueInstance"> = t.pki,
): Promise<InstanceFiles> {
  const c = await pki.issueInstance({ instanceId: crypto.randomUUID(), app });
  const base = `${t.dir}/${crypto.randomUUID()}`;
  await Deno.writeTextFile(`${base}.crt`, c.certPem);
  await Deno.writeTextFile(`${base}.key`, c.keyPem, { mode: 0o600 });
  return { cert: `${base}.crt`, key: `${base}.key` };
}

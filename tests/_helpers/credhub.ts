/**
 * A real `sigil credhub` for tests: HTTPS on a free port, a test PKI whose
 * root is the trusted CA bundle (also as `certs/ca.crt`, the
 * `CF_SYSTEM_CERT_PATH` layout), and bearer tokens from a local ES256 key.
 * @module
 */
import { exportPKCS8, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { createTestPki } from "./pki.ts";
import type { TestPki } from "./pki.ts";
import { freePort } from "./ports.ts";
import { parseConfig } from "../../lib/config/mod.ts";
import { startCredhub } from "../../lib/credhub/mod.ts";
import type { RunningCredhub } from "../../lib/credhub/mod.ts";
import { silentLogger } from "../../lib/observe/mod.ts";

/** A running test CredHub and what talks to it. */
export interface TestCredhub {
  /** Temp dir with `certs/ca.crt` (the root) and the server's files. */
  dir: string;
  pki: TestPki;
  ch: RunningCredhub;
  /** A token for `sub: broker` with the given space-separated scopes. */
  token(scope: string): Promise<string>;
  /** With `uaa`: the clients file and the token key file (the CA's token.key). */
  clientsFile: string;
  tokenKeyFile: string;
  close(): Promise<void>;
}

/**
 * Starts `sigil credhub` with a fresh PKI and token key; `revokedSerials`
 * become its deny list (`revoked_serials_file`).
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
  const cfg = parseConfig(`credhub:
  listen: 127.0.0.1:${freePort()}
  database: ${dir}/ch.db
  keys_dir: ${dir}/keys
  tls_cert_file: ${dir}/server.crt
  tls_key_file: ${dir}/server.key
  trusted_cas_file: ${dir}/certs/ca.crt
  public_key_file: ${dir}/token.pub
${revoked}${uaa}`).credhub!;
  const ch = await startCredhub(cfg, { logger: silentLogger });
  return {
    dir,
    pki,
    ch,
    clientsFile: `${dir}/clients.json`,
    tokenKeyFile: `${dir}/token.key`,
    token: (scope) =>
      new SignJWT({ scope, client_id: "broker" })
        .setProtectedHeader({ alg: "ES256" })
        .setIssuer("sigil-ca").setAudience("sigil").setSubject("broker")
        .setExpirationTime("1h")
        .sign(tk.privateKey),
    async close() {
      await ch.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

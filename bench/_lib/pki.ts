/**
 * Certificates for a benchmark, made at run time (nothing committed): a test
 * CA, one instance credential written as a proxy's `credentials_dir`, and a
 * client certificate, with the CA's root in `ca.pem`.
 * @module
 */
import { createTestPki } from "../../tests/_helpers/pki.ts";
import type { TestCredential, TestPki } from "../../tests/_helpers/pki.ts";
import type { Identity } from "../../lib/pki/mod.ts";

/** Options of {@linkcode writeBenchPki}. */
export interface BenchPkiOptions {
  /** @default {"test.sigil"} */
  trustDomain?: string;
  /** The instance whose credentials go to `dir/<instanceDir>`. */
  instance: Partial<Identity> & { instanceId: string };
  /** @default {"instance"} */
  instanceDir?: string;
  /** The client certificate (its files: `dir/<name>.crt`, `dir/<name>.key`). */
  client: { name: string; commonName?: string; dnsNames?: string[] };
}

/** What {@linkcode writeBenchPki} made and where it wrote it. */
export interface BenchPki {
  pki: TestPki;
  /** The root CA certificate, `dir/ca.pem`. */
  caFile: string;
  /** `instance.crt` / `instance.key` of the instance. */
  instanceDir: string;
  instance: TestCredential;
  client: TestCredential;
  clientCertFile: string;
  /** The client key, mode 0600. */
  clientKeyFile: string;
}

/** Makes the CA, the instance and the client credentials under `dir`. */
export async function writeBenchPki(
  dir: string,
  options: BenchPkiOptions,
): Promise<BenchPki> {
  const pki = await createTestPki(options.trustDomain);
  const instanceDir = `${dir}/${options.instanceDir ?? "instance"}`;
  const instance = await pki.writeInstance(instanceDir, options.instance);
  const { name, ...client } = options.client;
  const cred = await pki.issueClient(client);
  const caFile = `${dir}/ca.pem`;
  const clientCertFile = `${dir}/${name}.crt`;
  const clientKeyFile = `${dir}/${name}.key`;
  await Deno.writeTextFile(caFile, pki.rootPem);
  await Deno.writeTextFile(clientCertFile, cred.certPem);
  await Deno.writeTextFile(clientKeyFile, cred.keyPem, { mode: 0o600 });
  return {
    pki,
    caFile,
    instanceDir,
    instance,
    client: cred,
    clientCertFile,
    clientKeyFile,
  };
}

/**
 * The CA directory: root and intermediate certificates and keys, the JWT
 * signing key and metadata. Written once by `sigil ca init`; loaded (with a
 * key-permission check) by every other CA command.
 * @module
 */
import { join } from "node:path";
import { writeSecretFile } from "../common/mod.ts";
import {
  createIntermediateCa,
  createRootCa,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  parseCertificate,
  validateTrustDomain,
} from "../pki/mod.ts";
import type { Issuer, KeyPair, KeyType } from "../pki/mod.ts";
import { CaError } from "./errors.ts";

/** File names inside a CA directory. */
export const CA_FILES = {
  rootCert: "root.crt",
  rootKey: "root.key",
  intermediateCert: "intermediate.crt",
  intermediateKey: "intermediate.key",
  tokenKey: "token.key",
  meta: "ca.json",
  ledger: "ledger.sqlite",
} as const;

const KEY_FILES = [
  CA_FILES.rootKey,
  CA_FILES.intermediateKey,
  CA_FILES.tokenKey,
];

/** Options for {@linkcode initCa}. */
export interface InitCaOptions {
  /** @default {"sigil.internal"} */
  trustDomain?: string;
  /** @default {"ec-p256"} */
  keyType?: KeyType;
  /** @default {10 years} */
  rootValidityMs?: number;
  /** @default {1 year} */
  intermediateValidityMs?: number;
  now?: number;
}

/** Metadata stored in `ca.json`. */
export interface CaMeta {
  trust_domain: string;
  key_type: KeyType;
  created_at: string;
  token_key_id: string;
}

/** A loaded CA. */
export interface CaStore {
  dir: string;
  meta: CaMeta;
  rootPem: string;
  intermediatePem: string;
  /** The intermediate, ready to sign leaves. */
  issuer: Issuer;
  /** ES256 key pair for tokens. */
  tokenKeys: KeyPair;
  /** Trust bundle served at /v1/bundle.pem (the root). */
  bundlePem: string;
}

/**
 * Creates a new CA in `dir`: root, intermediate, token key (keys 0600, dir 0700).
 *
 * @param dir Target directory; created if missing; must not already hold a CA.
 * @param options Trust domain, key type, lifetimes.
 * @returns The loaded store.
 * @throws {CaError} `ERR_CA_EXISTS` when `dir` already holds CA files (nothing is changed).
 *
 * @example
 * ```ts ignore
 * const ca = await initCa("/var/lib/sigil/ca", { trustDomain: "prod.example" });
 * ```
 */
export async function initCa(
  dir: string,
  options: InitCaOptions = {},
): Promise<CaStore> {
  const trustDomain = validateTrustDomain(
    options.trustDomain ?? "sigil.internal",
  );
  const keyType = options.keyType ?? "ec-p256";
  const rootValidityMs = options.rootValidityMs ?? 10 * 365 * 86_400_000;
  const intermediateValidityMs = options.intermediateValidityMs ??
    365 * 86_400_000;
  if (intermediateValidityMs > rootValidityMs) {
    throw new RangeError(
      "Cannot create CA: intermediate validity must not exceed root validity",
    );
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  for (const f of Object.values(CA_FILES)) {
    try {
      await Deno.lstat(join(dir, f));
      throw new CaError(
        "ERR_CA_EXISTS",
        `Cannot create CA in "${dir}": it already holds "${f}"; choose an empty directory`,
      );
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  await Deno.chmod(dir, 0o700);
  const now = options.now ?? Date.now();
  const rootKeys = await generateKeyPair(keyType);
  const root = await createRootCa(rootKeys, {
    commonName: `Sigil Root CA (${trustDomain})`,
    validityMs: rootValidityMs,
    now,
    backdateMs: 60_000,
  });
  const interKeys = await generateKeyPair(keyType);
  const inter = await createIntermediateCa(
    interKeys.publicKey,
    { certPem: root.pem, keys: rootKeys, chainPem: "" },
    {
      commonName: `Sigil Intermediate CA (${trustDomain})`,
      validityMs: intermediateValidityMs,
      now,
      backdateMs: 60_000,
    },
  );
  const tokenKeys = await generateKeyPair("ec-p256");
  const meta: CaMeta = {
    trust_domain: trustDomain,
    key_type: keyType,
    created_at: new Date(now).toISOString(),
    token_key_id: inter.serial.slice(0, 16),
  };
  // Keys first (exclusive create, 0600), metadata last: a CA dir is complete
  // only when ca.json exists.
  await writeNew(
    join(dir, CA_FILES.rootKey),
    await exportPrivateKeyPem(rootKeys),
    0o600,
  );
  await writeNew(
    join(dir, CA_FILES.intermediateKey),
    await exportPrivateKeyPem(interKeys),
    0o600,
  );
  await writeNew(
    join(dir, CA_FILES.tokenKey),
    await exportPrivateKeyPem(tokenKeys),
    0o600,
  );
  await writeNew(join(dir, CA_FILES.rootCert), root.pem, 0o644);
  await writeNew(join(dir, CA_FILES.intermediateCert), inter.pem, 0o644);
  await writeNew(
    join(dir, CA_FILES.meta),
    JSON.stringify(meta, null, 2) + "\n",
    0o644,
  );
  return await loadCa(dir);
}

async function writeNew(
  path: string,
  data: string,
  mode: number,
): Promise<void> {
  await writeSecretFile(path, data, { mode, exclusive: true });
}

/**
 * Loads a CA directory. Refuses key files readable by group or others.
 *
 * @throws {CaError} `ERR_CA_NOT_FOUND` (not a CA dir), `ERR_CA_KEY_PERMISSIONS`
 *   (names the file and the chmod to run).
 *
 * @example
 * ```ts ignore
 * const ca = await loadCa("/var/lib/sigil/ca");
 * ```
 */
export async function loadCa(dir: string): Promise<CaStore> {
  let metaText: string;
  try {
    metaText = await Deno.readTextFile(join(dir, CA_FILES.meta));
  } catch (err) {
    throw new CaError(
      "ERR_CA_NOT_FOUND",
      `Cannot load CA from "${dir}": no ${CA_FILES.meta} there; create one with 'sigil ca init --dir ${dir}'`,
      { cause: err },
    );
  }
  let meta: CaMeta;
  try {
    meta = JSON.parse(metaText) as CaMeta;
  } catch (err) {
    throw new CaError(
      "ERR_CA_NOT_FOUND",
      `Cannot load CA from "${dir}": ${CA_FILES.meta} is not valid JSON; restore it from backup`,
      { cause: err },
    );
  }
  for (const f of KEY_FILES) {
    const path = join(dir, f);
    const st = await Deno.stat(path).catch((err) => {
      throw new CaError(
        "ERR_CA_NOT_FOUND",
        `Cannot load CA from "${dir}": "${f}" is missing`,
        {
          cause: err,
        },
      );
    });
    if (st.mode !== null && (st.mode & 0o077) !== 0) {
      throw new CaError(
        "ERR_CA_KEY_PERMISSIONS",
        `Cannot load CA: private key "${path}" is readable by group or others (mode ${
          (st.mode & 0o777).toString(8)
        }); run 'chmod 600 ${path}'`,
      );
    }
  }
  const read = (f: string) => Deno.readTextFile(join(dir, f));
  const rootPem = await read(CA_FILES.rootCert);
  const intermediatePem = await read(CA_FILES.intermediateCert);
  const interKeys = await importPrivateKeyPem(
    await read(CA_FILES.intermediateKey),
  );
  const tokenKeys = await importPrivateKeyPem(await read(CA_FILES.tokenKey));
  parseCertificate(rootPem);
  parseCertificate(intermediatePem);
  return {
    dir,
    meta,
    rootPem,
    intermediatePem,
    issuer: { certPem: intermediatePem, keys: interKeys, chainPem: "" },
    tokenKeys,
    bundlePem: rootPem,
  };
}

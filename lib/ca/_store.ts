/**
 * The CA directory: root and intermediate certificates and keys, the JWT
 * signing key and metadata. Written once by `sigil ca init`; loaded (with a
 * key-permission check) by every other CA command.
 * @module
 */
import { join } from "node:path";
import { writeSecretFile } from "../common/mod.ts";
import {
  checkCaCertificate,
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
  /** Optional: absent on a CA whose root is kept offline. */
  rootKey: "root.key",
  intermediateCert: "intermediate.crt",
  intermediateKey: "intermediate.key",
  tokenKey: "token.key",
  meta: "ca.json",
  ledger: "ledger.sqlite",
} as const;

/** A previous intermediate kept beside the current one: `intermediate-<serial>.crt`. */
const PREVIOUS_RE = /^intermediate-([0-9a-f]+)\.crt$/;

const KEY_FILES = [CA_FILES.intermediateKey, CA_FILES.tokenKey];

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
  /** Write the root key here instead of `DIR/root.key` (offline root). */
  rootKeyOut?: string;
  now?: number;
}

/** Metadata stored in `ca.json`. */
export interface CaMeta {
  trust_domain: string;
  key_type: KeyType;
  created_at: string;
  token_key_id: string;
}

/** A previous intermediate still served (its leaves have not all expired). */
export interface PreviousIntermediate {
  pem: string;
  serial: string;
  notAfter: Date;
}

/** A loaded CA. */
export interface CaStore {
  dir: string;
  meta: CaMeta;
  rootPem: string;
  /** The current intermediate (signs new leaves). */
  intermediatePem: string;
  /** Previous intermediates not yet expired, newest first. */
  previousIntermediates: PreviousIntermediate[];
  /** The intermediate, ready to sign leaves. */
  issuer: Issuer;
  /** ES256 key pair for tokens. */
  tokenKeys: KeyPair;
  /** Trust bundle served at /v1/bundle.pem (the root). */
  bundlePem: string;
  /** Current then previous intermediates (/v1/intermediates.pem). */
  intermediatesPem: string;
  /** True when `root.key` is in the CA directory (not an offline root). */
  rootKeyOnline: boolean;
}

/**
 * Creates a new CA in `dir`: root, intermediate, token key (keys 0600, dir 0700).
 * With `rootKeyOut` the root key is written there, not into `dir`.
 *
 * @param dir Target directory; created if missing; must not already hold a CA.
 * @param options Trust domain, key type, lifetimes, where the root key goes.
 * @returns The loaded store.
 * @throws {CaError} `ERR_CA_EXISTS` when `dir` (or `rootKeyOut`) already exists (nothing is changed).
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
  await prepareDir(dir, options.rootKeyOut);
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
  await writeCa(dir, {
    trustDomain,
    now,
    rootPem: root.pem,
    rootKeyPem: await exportPrivateKeyPem(rootKeys),
    rootKeyPath: options.rootKeyOut,
    interPem: inter.pem,
    interKeys,
  });
  return await loadCa(dir);
}

async function prepareDir(dir: string, rootKeyOut?: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const taken = [
    ...Object.values(CA_FILES).map((f) => join(dir, f)),
    ...(rootKeyOut ? [rootKeyOut] : []),
  ];
  for (const path of taken) {
    try {
      await Deno.lstat(path);
      throw new CaError(
        "ERR_CA_EXISTS",
        path === rootKeyOut
          ? `Cannot create CA: root key file "${path}" already exists; choose a new path`
          : `Cannot create CA in "${dir}": it already holds "${
            path.slice(dir.length + 1)
          }"; choose an empty directory`,
      );
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  await Deno.chmod(dir, 0o700);
}

async function writeCa(dir: string, c: {
  trustDomain: string;
  now: number;
  rootPem: string;
  rootKeyPem?: string;
  rootKeyPath?: string;
  interPem: string;
  interKeys: KeyPair;
}): Promise<void> {
  const tokenKeys = await generateKeyPair("ec-p256");
  const meta: CaMeta = {
    trust_domain: c.trustDomain,
    key_type: c.interKeys.type,
    created_at: new Date(c.now).toISOString(),
    token_key_id: parseCertificate(c.interPem).serial.slice(0, 16),
  };
  // Keys first (exclusive create, 0600), metadata last: a CA dir is complete
  // only when ca.json exists.
  if (c.rootKeyPem !== undefined) {
    await writeNew(
      c.rootKeyPath ?? join(dir, CA_FILES.rootKey),
      c.rootKeyPem,
      0o600,
    );
  }
  await writeNew(
    join(dir, CA_FILES.intermediateKey),
    await exportPrivateKeyPem(c.interKeys),
    0o600,
  );
  await writeNew(
    join(dir, CA_FILES.tokenKey),
    await exportPrivateKeyPem(tokenKeys),
    0o600,
  );
  await writeNew(join(dir, CA_FILES.rootCert), c.rootPem, 0o644);
  await writeNew(join(dir, CA_FILES.intermediateCert), c.interPem, 0o644);
  await writeNew(
    join(dir, CA_FILES.meta),
    JSON.stringify(meta, null, 2) + "\n",
    0o644,
  );
}

async function writeNew(
  path: string,
  data: string,
  mode: number,
): Promise<void> {
  await writeSecretFile(path, data, { mode, exclusive: true });
}

/** Options for {@linkcode importCa}. */
export interface ImportCaOptions {
  /** Root certificate PEM (self-signed). */
  rootCertPem: string;
  /** Root key PEM; needed when no intermediate is given. */
  rootKeyPem?: string;
  /** Intermediate certificate PEM, signed by the root. */
  intermediateCertPem?: string;
  /** Its key PEM (required with the intermediate). */
  intermediateKeyPem?: string;
  /** Names of the inputs in errors. */
  labels?: {
    rootCert?: string;
    rootKey?: string;
    intermediateCert?: string;
    intermediateKey?: string;
  };
  /** @default {"sigil.internal"} */
  trustDomain?: string;
  /** Key type of an intermediate created under the root. @default {the root's} */
  keyType?: KeyType;
  /** @default {1 year} */
  intermediateValidityMs?: number;
  now?: number;
}

/**
 * Creates a CA directory from an existing root and/or intermediate after
 * checking them (key matches, CA:TRUE, path length, keyCertSign, validity,
 * the intermediate is signed by the root). Without an intermediate one is
 * created under the root; without a root key the root stays offline. Keys
 * are stored as PKCS#8.
 *
 * @throws {PkiError} `ERR_PKI_CA_INVALID` naming the input and the problem.
 * @throws {CaError} `ERR_CA_EXISTS`, or `ERR_CA_IMPORT_INCOMPLETE` when a key is missing.
 * @example
 * ```ts ignore
 * await importCa("/var/lib/sigil/ca", { rootCertPem, rootKeyPem });
 * ```
 */
export async function importCa(
  dir: string,
  o: ImportCaOptions,
): Promise<CaStore> {
  const trustDomain = validateTrustDomain(o.trustDomain ?? "sigil.internal");
  const now = o.now ?? Date.now();
  const l = o.labels ?? {};
  if (o.intermediateCertPem === undefined && o.rootKeyPem === undefined) {
    throw new CaError(
      "ERR_CA_IMPORT_INCOMPLETE",
      "Cannot import CA: give the root's key (to create an intermediate under it) or an intermediate certificate and its key",
    );
  }
  if (
    (o.intermediateCertPem === undefined) !==
      (o.intermediateKeyPem === undefined)
  ) {
    throw new CaError(
      "ERR_CA_IMPORT_INCOMPLETE",
      "Cannot import CA: an intermediate needs both its certificate and its key",
    );
  }
  const root = await checkCaCertificate(o.rootCertPem, {
    label: l.rootCert ?? "the root certificate",
    role: "root",
    now,
    keyPem: o.rootKeyPem,
    signsCa: true,
  });
  let interPem: string, interKeys: KeyPair;
  if (o.intermediateCertPem !== undefined) {
    const inter = await checkCaCertificate(o.intermediateCertPem, {
      label: l.intermediateCert ?? "the intermediate certificate",
      role: "intermediate",
      issuerPem: root.pem,
      now,
      keyPem: o.intermediateKeyPem,
    });
    interPem = inter.pem;
    interKeys = inter.keys!;
  } else {
    interKeys = await generateKeyPair(o.keyType ?? root.keyType);
    const inter = await createIntermediateCa(
      interKeys.publicKey,
      { certPem: root.pem, keys: root.keys!, chainPem: "" },
      {
        commonName: `Sigil Intermediate CA (${trustDomain})`,
        validityMs: o.intermediateValidityMs ?? 365 * 86_400_000,
        now,
        backdateMs: 60_000,
      },
    );
    interPem = inter.pem;
  }
  await prepareDir(dir);
  await writeCa(dir, {
    trustDomain,
    now,
    rootPem: root.pem,
    rootKeyPem: root.keys ? await exportPrivateKeyPem(root.keys) : undefined,
    interPem,
    interKeys,
  });
  return await loadCa(dir, { now });
}

/** Options for {@linkcode renewIntermediate}. */
export interface RenewIntermediateOptions {
  /** The root's private key PEM (from offline storage). */
  rootKeyPem: string;
  /** Names the key in errors. @default {"the root key"} */
  rootKeyLabel?: string;
  /** @default {1 year} */
  validityMs?: number;
  /** @default {the current intermediate's} */
  keyType?: KeyType;
  now?: number;
}

/** What {@linkcode renewIntermediate} did. */
export interface RenewedIntermediate {
  store: CaStore;
  /** The intermediate now kept beside the new one. */
  previous: PreviousIntermediate;
  /** Previous intermediates removed because they had expired. */
  removed: string[];
}

/**
 * Replaces the CA's intermediate with a new one signed by the root. The old
 * certificate stays beside it as `intermediate-<serial>.crt` (served until it
 * expires, which bounds its last leaf's expiry); its key is deleted. Expired
 * previous intermediates are removed. A running `ca serve` picks the new
 * intermediate up on restart.
 *
 * @throws {PkiError} `ERR_PKI_CA_INVALID` when the key does not match `root.crt`.
 * @example
 * ```ts ignore
 * await renewIntermediate(dir, { rootKeyPem: await Deno.readTextFile("/media/usb/root.key") });
 * ```
 */
export async function renewIntermediate(
  dir: string,
  o: RenewIntermediateOptions,
): Promise<RenewedIntermediate> {
  const now = o.now ?? Date.now();
  const ca = await loadCa(dir, { now });
  const root = await checkCaCertificate(ca.rootPem, {
    label: `root certificate "${join(dir, CA_FILES.rootCert)}" with ${
      o.rootKeyLabel ?? "the root key"
    }`,
    role: "root",
    now,
    keyPem: o.rootKeyPem,
    signsCa: true,
  });
  const old = parseCertificate(ca.intermediatePem);
  const keys = await generateKeyPair(o.keyType ?? ca.issuer.keys.type);
  const inter = await createIntermediateCa(
    keys.publicKey,
    { certPem: root.pem, keys: root.keys!, chainPem: "" },
    {
      commonName: `Sigil Intermediate CA (${ca.meta.trust_domain}) ${
        new Date(now).toISOString().slice(0, 10)
      }`,
      validityMs: o.validityMs ?? 365 * 86_400_000,
      now,
      backdateMs: 60_000,
    },
  );
  // Old certificate kept first, then the new pair replaces the current one
  // (each write is a rename); the old key goes last.
  const keptPath = join(dir, `intermediate-${old.serial}.crt`);
  await writeSecretFile(keptPath, ca.intermediatePem, { mode: 0o644 });
  await writeSecretFile(
    join(dir, CA_FILES.intermediateKey),
    await exportPrivateKeyPem(keys),
  );
  await writeSecretFile(join(dir, CA_FILES.intermediateCert), inter.pem, {
    mode: 0o644,
  });
  if (keys.type !== ca.meta.key_type) {
    await writeSecretFile(
      join(dir, CA_FILES.meta),
      JSON.stringify({ ...ca.meta, key_type: keys.type }, null, 2) + "\n",
      { mode: 0o644 },
    );
  }
  const removed: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const m = PREVIOUS_RE.exec(e.name);
    if (!m || !e.isFile) continue;
    const pem = await Deno.readTextFile(join(dir, e.name));
    if (parseCertificate(pem).notAfter.getTime() <= now) {
      await Deno.remove(join(dir, e.name));
      removed.push(e.name);
    }
  }
  return {
    store: await loadCa(dir, { now }),
    previous: {
      pem: ca.intermediatePem,
      serial: old.serial,
      notAfter: old.notAfter,
    },
    removed,
  };
}

/**
 * Loads a CA directory. Refuses key files readable by group or others.
 * `root.key` is optional (offline root); previous intermediates that have
 * not expired at `now` are loaded beside the current one.
 *
 * @throws {CaError} `ERR_CA_NOT_FOUND` (not a CA dir), `ERR_CA_KEY_PERMISSIONS`
 *   (names the file and the chmod to run).
 *
 * @example
 * ```ts ignore
 * const ca = await loadCa("/var/lib/sigil/ca");
 * ```
 */
export async function loadCa(
  dir: string,
  options: { now?: number } = {},
): Promise<CaStore> {
  const now = options.now ?? Date.now();
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
    const st = await Deno.stat(join(dir, f)).catch((err) => {
      throw new CaError(
        "ERR_CA_NOT_FOUND",
        `Cannot load CA from "${dir}": "${f}" is missing`,
        { cause: err },
      );
    });
    checkMode(join(dir, f), st);
  }
  let rootKeyOnline = false;
  try {
    checkMode(
      join(dir, CA_FILES.rootKey),
      await Deno.stat(join(dir, CA_FILES.rootKey)),
    );
    rootKeyOnline = true;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const read = (f: string) => Deno.readTextFile(join(dir, f));
  const rootPem = await read(CA_FILES.rootCert);
  const intermediatePem = await read(CA_FILES.intermediateCert);
  const interKeys = await importPrivateKeyPem(
    await read(CA_FILES.intermediateKey),
  );
  const tokenKeys = await importPrivateKeyPem(await read(CA_FILES.tokenKey));
  parseCertificate(rootPem);
  const current = parseCertificate(intermediatePem);
  const previousIntermediates: PreviousIntermediate[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !PREVIOUS_RE.test(e.name)) continue;
    const pem = await read(e.name);
    const info = parseCertificate(pem);
    if (info.notAfter.getTime() <= now || info.serial === current.serial) {
      continue;
    }
    previousIntermediates.push({
      pem,
      serial: info.serial,
      notAfter: info.notAfter,
    });
  }
  previousIntermediates.sort((a, b) =>
    b.notAfter.getTime() - a.notAfter.getTime()
  );
  return {
    dir,
    meta,
    rootPem,
    intermediatePem,
    previousIntermediates,
    issuer: { certPem: intermediatePem, keys: interKeys, chainPem: "" },
    tokenKeys,
    bundlePem: rootPem,
    intermediatesPem: [
      intermediatePem,
      ...previousIntermediates.map((p) => p.pem),
    ]
      .join(""),
    rootKeyOnline,
  };
}

function checkMode(path: string, st: Deno.FileInfo): void {
  if (st.mode !== null && (st.mode & 0o077) !== 0) {
    throw new CaError(
      "ERR_CA_KEY_PERMISSIONS",
      `Cannot load CA: private key "${path}" is readable by group or others (mode ${
        (st.mode & 0o777).toString(8)
      }); run 'chmod 600 ${path}'`,
    );
  }
}

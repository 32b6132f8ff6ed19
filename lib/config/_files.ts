/**
 * The file checks `sigil config check` runs after the schema: every path a
 * role reads at start must exist, and certificates and keys must parse, so the
 * check refuses what starting the role would refuse. Kept apart from the
 * schema, which stays pure.
 * @module
 */
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { dirname, isAbsolute, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createTokenVerifier } from "../token/mod.ts";
import type { Config } from "./schema.ts";
import { ConfigError } from "./errors.ts";
import type { ConfigIssue } from "./errors.ts";

/** What a setting must point at. */
type Kind =
  | "dir" // an existing directory
  | "optional-dir" // a directory when present (the rotator creates it)
  | "ca-dir" // a directory written by `sigil ca init`
  | "certs" // a PEM file with at least one parseable certificate
  | "key" // a PEM private key
  | "file" // a readable file
  | "secret-file" // a readable file only its owner may read (a token)
  | "parent" // a file that may be created: its directory must exist
  | "optional-certs" // parsed when present (credentials the rotator writes)
  | "optional-key"
  | "secret-key" // a PEM private key only its owner may read
  | "secret-parent" // "parent", and only its owner may read it when present
  | "public-key" // a token-verification key: PEM SPKI, JWK or JWKS (ES256)
  | "keys-dir" // CredHub's encryption keys: <id>.key, 0600, 32 bytes base64
  | "database"; // CredHub's SQLite file: may be created; opens when present

interface Setting {
  path: string;
  file: string;
  kind: Kind;
  /** For a key: the certificate it must belong to. */
  cert?: string;
  /** For a database: the directory holding its encryption keys. */
  keysDir?: string;
}

/** The CA files `sigil ca serve` loads from `ca.dir`. */
const CA_DIR_FILES = [
  "ca.json",
  "root.crt",
  "intermediate.crt",
  "intermediate.key",
  "token.key",
];

function* settings(cfg: Config): Generator<Setting> {
  const s = (
    path: string,
    file: string | undefined,
    kind: Kind,
    extra: Partial<Setting> = {},
  ) => file === undefined ? [] : [{ path, file, kind, ...extra }];
  if (cfg.ca) yield* s("ca.dir", cfg.ca.dir, "ca-dir");
  if (cfg.ca?.store?.kind === "postgres") {
    yield* s("ca.store.password_file", cfg.ca.store.password_file, "file");
    yield* s("ca.store.ca_bundle", cfg.ca.store.ca_bundle, "certs");
  }
  if (cfg.rotator) {
    const r = cfg.rotator;
    yield* s("rotator.ca_bundle", r.ca_bundle, "certs");
    yield* s("rotator.token_file", r.token_file, "secret-file");
  }
  if (cfg.proxy) {
    yield* s("proxy.crl.ca_bundle", cfg.proxy.crl?.ca_bundle, "certs");
    for (const [i, inst] of cfg.proxy.instances.entries()) {
      const p = `proxy.instances.${i}`;
      const dir = inst.credentials_dir;
      yield* s(`${p}.credentials_dir`, dir, "optional-dir");
      const rel = (f: string) => isAbsolute(f) ? f : join(dir, f);
      yield* s(`${p}.cert_file`, rel(inst.cert_file), "optional-certs");
      yield* s(`${p}.key_file`, rel(inst.key_file), "optional-key");
      for (const [j, f] of inst.trusted_client_cas.entries()) {
        yield* s(`${p}.trusted_client_cas.${j}`, f, "certs");
      }
      for (const [j, t] of (inst.register?.routers ?? []).entries()) {
        yield* s(
          `${p}.register.routers.${j}.token_file`,
          t.token_file,
          "secret-file",
        );
        yield* s(`${p}.register.routers.${j}.ca_bundle`, t.ca_bundle, "certs");
      }
      yield* s(
        `${p}.register.nats.tls_ca`,
        inst.register?.nats?.tls_ca,
        "certs",
      );
    }
  }
  if (cfg.router) {
    const r = cfg.router;
    yield* s("router.https.cert", r.https?.cert, "certs");
    yield* s("router.https.key", r.https?.key, "key");
    yield* s("router.api.cert", r.api.cert, "certs");
    yield* s("router.api.key", r.api.key, "key");
    yield* s("router.api.ca_bundle", r.api.ca_bundle, "certs");
    yield* s("router.api.public_key_file", r.api.public_key_file, "public-key");
    yield* s("router.nats.tls_ca", r.nats?.tls_ca, "certs");
    yield* s("router.backends.ca", r.backends.ca, "certs");
    yield* s(
      "router.backends.crl.ca_bundle",
      r.backends.crl?.ca_bundle,
      "certs",
    );
    yield* s("router.backends.cert", r.backends.cert, "certs");
    yield* s("router.backends.key", r.backends.key, "key", {
      cert: r.backends.cert,
    });
    yield* s("router.route_services.ca", r.route_services.ca, "certs");
    yield* s("router.route_services.cert", r.route_services.cert, "certs");
    yield* s("router.route_services.key", r.route_services.key, "key", {
      cert: r.route_services.cert,
    });
    if (r.access_log.enabled) {
      yield* s("router.access_log.file", r.access_log.file, "parent");
    }
  }
  if (cfg.credhub) {
    const c = cfg.credhub;
    yield* s("credhub.keys_dir", c.keys_dir, "keys-dir");
    const sqlite = c.store?.kind === "sqlite" ? c.store.path : c.database;
    yield* s(
      c.database ? "credhub.database" : "credhub.store",
      sqlite,
      "database",
      { keysDir: c.keys_dir },
    );
    if (c.store?.kind === "postgres") {
      yield* s("credhub.store.password_file", c.store.password_file, "file");
      yield* s("credhub.store.ca_bundle", c.store.ca_bundle, "certs");
    }
    yield* s("credhub.tls_cert_file", c.tls_cert_file, "certs");
    yield* s("credhub.tls_key_file", c.tls_key_file, "key", {
      cert: c.tls_cert_file,
    });
    yield* s("credhub.trusted_cas_file", c.trusted_cas_file, "certs");
    yield* s("credhub.jwks_ca_file", c.jwks_ca_file, "certs");
    yield* s("credhub.public_key_file", c.public_key_file, "public-key");
    yield* s("credhub.uaa.token_key_file", c.uaa?.token_key_file, "secret-key");
    yield* s("credhub.uaa.clients_file", c.uaa?.clients_file, "secret-parent");
  }
}

/**
 * Checks every file a config names: existence, type, and that certificates
 * and keys parse. Reads files; never prints their contents.
 *
 * @param cfg A config that passed the schema.
 * @returns One issue per unusable setting (empty when all are usable).
 *
 * @example
 * ```ts
 * import { parseConfig } from "./load.ts";
 * import { checkConfigFiles } from "./_files.ts";
 * const cfg = parseConfig("ca:\n  dir: /nonexistent/ca\n");
 * const issues = await checkConfigFiles(cfg);
 * console.assert(issues[0]?.path === "ca.dir");
 * ```
 */
export async function checkConfigFiles(cfg: Config): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  for (const setting of settings(cfg)) {
    const why = await check(setting);
    if (why) issues.push({ path: setting.path, message: why });
  }
  return issues;
}

/**
 * Like {@linkcode checkConfigFiles}, but throws: what `sigil config check`
 * prints, and what a role runs before it starts so both refuse the same.
 *
 * @throws {ConfigError} Listing every unusable setting.
 * @example
 * ```ts ignore
 * await assertConfigFiles("/etc/sigil/sigil.yaml", { credhub: cfg.credhub });
 * ```
 */
export async function assertConfigFiles(
  file: string,
  cfg: Config,
): Promise<void> {
  const issues = await checkConfigFiles(cfg);
  if (issues.length > 0) {
    throw new ConfigError(
      `Invalid config "${file}":\n${
        issues.map((i) => `  ${i.path}: ${i.message}`).join("\n")
      }`,
      issues,
    );
  }
}

async function check(setting: Setting): Promise<string | undefined> {
  const { file } = setting;
  let { kind } = setting;
  if (kind === "keys-dir") return await checkKeysDir(file);
  if (
    kind === "secret-parent" || kind === "secret-key" || kind === "key" ||
    kind === "optional-key" || kind === "secret-file"
  ) {
    // Every role refuses private keys and tokens others can read.
    const why = await ownerOnly(
      file,
      kind === "secret-parent" || kind === "optional-key",
    );
    if (why) return why;
    if (kind === "secret-parent") kind = "parent";
    if (kind === "secret-file") kind = "file";
  }
  const target = kind === "parent" || kind === "database"
    ? dirname(file)
    : file;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(target);
  } catch (err) {
    if (
      err instanceof Deno.errors.NotFound &&
      (kind === "optional-certs" || kind === "optional-key" ||
        kind === "optional-dir")
    ) {
      return undefined; // not issued yet: the proxy waits for it
    }
    return `cannot use "${target}": ${reason(err)}`;
  }
  if (kind === "database") {
    return info.isDirectory
      ? await checkDatabase(file, setting.keysDir!)
      : `"${target}" is not a directory`;
  }
  const wantDir = kind === "dir" || kind === "optional-dir" ||
    kind === "ca-dir" || kind === "parent";
  if (wantDir && !info.isDirectory) {
    return `"${target}" is not a directory`;
  }
  if (!wantDir && !info.isFile) return `"${file}" is not a file`;
  if (kind === "ca-dir") {
    for (const f of CA_DIR_FILES) {
      try {
        await Deno.stat(join(file, f));
      } catch (err) {
        return err instanceof Deno.errors.NotFound
          ? `"${file}" is not a CA directory (no "${f}"): run 'sigil ca init --dir ${file}'`
          : `cannot use "${join(file, f)}": ${reason(err)}`;
      }
    }
    return undefined;
  }
  if (wantDir) return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    return `cannot read "${file}": ${reason(err)}`;
  }
  if (kind === "certs" || kind === "optional-certs") {
    return parseCerts(file, text);
  }
  if (kind === "key" || kind === "optional-key") {
    return parseKey(file, text) ?? await keyMatches(file, text, setting.cert);
  }
  if (kind === "secret-key") return parseKey(file, text);
  if (kind === "public-key") return await parsePublicKey(file, text);
  return undefined;
}

/** The key must belong to the first certificate of `certFile` (when that parses). */
async function keyMatches(
  file: string,
  keyPem: string,
  certFile: string | undefined,
): Promise<string | undefined> {
  if (certFile === undefined) return undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await Deno.readTextFile(certFile));
  } catch {
    return undefined; // the certificate's own setting reports it
  }
  return cert.checkPrivateKey(createPrivateKey(keyPem))
    ? undefined
    : `"${file}" does not match the certificate "${certFile}" (a key from another pair?)`;
}

/** What the token verifier accepts: ES256 as PEM SPKI, JWK or JWKS. */
async function parsePublicKey(
  file: string,
  text: string,
): Promise<string | undefined> {
  try {
    const verifier = await createTokenVerifier({ publicKey: text.trim() });
    verifier.close();
    return undefined;
  } catch {
    return `"${file}" holds no usable token public key (ES256 as PEM 'BEGIN PUBLIC KEY', JWK or JWKS)`;
  }
}

/**
 * CredHub's key directory, as the store reads it: may be missing (it is
 * created, with a first key), else every `*.key` file must be 0600 and hold
 * 32 bytes in base64.
 */
async function checkKeysDir(dir: string): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      return `cannot use "${dir}": ${reason(err)}`;
    }
    return await creatableDir(dir);
  }
  if (!info.isDirectory) return `"${dir}" is not a directory`;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.endsWith(".key")) continue;
      const path = join(dir, e.name);
      const mode = (await Deno.stat(path)).mode ?? 0;
      if (mode & 0o077) {
        return `encryption key "${path}" is readable by group or others (mode ${
          (mode & 0o777).toString(8)
        }); run 'chmod 600 ${path}'`;
      }
      if (!encryptionKeyId(await Deno.readTextFile(path))) {
        return `encryption key "${path}" does not hold 32 bytes in base64`;
      }
    }
  } catch (err) {
    return `cannot read "${dir}": ${reason(err)}`;
  }
  return undefined;
}

/** A missing directory is fine when its nearest existing ancestor is a directory. */
async function creatableDir(dir: string): Promise<string | undefined> {
  for (let d = dirname(dir);; d = dirname(d)) {
    try {
      const info = await Deno.stat(d);
      return info.isDirectory
        ? undefined
        : `cannot create "${dir}": "${d}" is not a directory`;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound) || d === dirname(d)) {
        return `cannot create "${dir}": ${reason(err)}`;
      }
    }
  }
}

/**
 * An existing CredHub database must open, and every key its credentials are
 * encrypted under must be in `keysDir` (the store refuses to start without
 * them). Opened read-only; no value is decrypted.
 */
async function checkDatabase(
  file: string,
  keysDir: string,
): Promise<string | undefined> {
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) return `"${file}" is not a file`;
  } catch (err) {
    return err instanceof Deno.errors.NotFound
      ? undefined // created at start
      : `cannot use "${file}": ${reason(err)}`;
  }
  let used: string[];
  try {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      const table = db.prepare(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'credentials'",
      ).get();
      used = table
        ? (db.prepare("SELECT DISTINCT key_id FROM credentials").all() as Array<
          { key_id: string }
        >).map((r) => r.key_id)
        : [];
    } finally {
      db.close();
    }
  } catch (err) {
    return `"${file}" is not a usable SQLite database (${
      err instanceof Error ? err.message : String(err)
    })`;
  }
  if (used.length === 0) return undefined;
  const present = new Set<string>();
  try {
    for await (const e of Deno.readDir(keysDir)) {
      if (!e.isFile || !e.name.endsWith(".key")) continue;
      const id = encryptionKeyId(
        await Deno.readTextFile(join(keysDir, e.name)).catch(() => ""),
      );
      if (id) present.add(id);
    }
  } catch {
    // A missing keys_dir: every key is missing.
  }
  const missing = used.filter((id) => !present.has(id));
  return missing.length === 0
    ? undefined
    : `credentials in "${file}" are encrypted under key${
      missing.length > 1 ? "s" : ""
    } ${
      missing.join(", ")
    }, not found in "${keysDir}" (restore the key files from the backup)`;
}

/** The store's key id (first 16 hex digits of the key's SHA-256), or undefined. */
function encryptionKeyId(text: string): string | undefined {
  let raw: string;
  try {
    raw = atob(text.trim());
  } catch {
    return undefined;
  }
  if (raw.length !== 32) return undefined;
  const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

function parseCerts(file: string, text: string): string | undefined {
  const blocks = text.match(
    /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
  ) ?? [];
  if (blocks.length === 0) {
    return `"${file}" holds no PEM certificate ('BEGIN CERTIFICATE' block)`;
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      return `"${file}": certificate ${
        i + 1
      } of ${blocks.length} does not parse`;
    }
  }
  return undefined;
}

function parseKey(file: string, text: string): string | undefined {
  try {
    createPrivateKey(text);
    return undefined;
  } catch {
    return `"${file}" holds no usable PEM private key`;
  }
}

function reason(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) {
    return "permission denied (check that this user may read it)";
  }
  return err instanceof Error ? err.message : String(err);
}

/** Start refuses secrets that group or others can read; so does the check. */
async function ownerOnly(
  file: string,
  mayBeMissing: boolean,
): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && mayBeMissing) return undefined;
    return `cannot use "${file}": ${reason(err)}`;
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    return `"${file}" is readable by group or others (mode ${
      (info.mode & 0o777).toString(8)
    }); run 'chmod 600 ${file}'`;
  }
  return undefined;
}

/**
 * The file checks `sigil config check` runs after the schema: every path a
 * role reads at start must exist, and certificates and keys must parse, so the
 * check refuses what starting the role would refuse. Kept apart from the
 * schema, which stays pure.
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { dirname, isAbsolute, join } from "node:path";
import type { Config } from "./schema.ts";
import type { ConfigIssue } from "./errors.ts";

/** What a setting must point at. */
type Kind =
  | "dir" // an existing directory
  | "ca-dir" // a directory written by `sigil ca init`
  | "certs" // a PEM file with at least one parseable certificate
  | "key" // a PEM private key
  | "file" // a readable file
  | "parent" // a file that may be created: its directory must exist
  | "optional-certs" // parsed when present (credentials the rotator writes)
  | "optional-key"
  | "secret-key" // a PEM private key only its owner may read
  | "secret-parent"; // "parent", and only its owner may read it when present

interface Setting {
  path: string;
  file: string;
  kind: Kind;
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
  const s = (path: string, file: string | undefined, kind: Kind) =>
    file === undefined ? [] : [{ path, file, kind }];
  if (cfg.ca) yield* s("ca.dir", cfg.ca.dir, "ca-dir");
  if (cfg.rotator) {
    const r = cfg.rotator;
    yield* s("rotator.ca_bundle", r.ca_bundle, "certs");
    yield* s("rotator.token_file", r.token_file, "file");
  }
  if (cfg.proxy) {
    for (const [i, inst] of cfg.proxy.instances.entries()) {
      const p = `proxy.instances.${i}`;
      const dir = inst.credentials_dir;
      yield* s(`${p}.credentials_dir`, dir, "dir");
      const rel = (f: string) => isAbsolute(f) ? f : join(dir, f);
      yield* s(`${p}.cert_file`, rel(inst.cert_file), "optional-certs");
      yield* s(`${p}.key_file`, rel(inst.key_file), "optional-key");
      for (const [j, f] of inst.trusted_client_cas.entries()) {
        yield* s(`${p}.trusted_client_cas.${j}`, f, "certs");
      }
      for (const [j, t] of (inst.register?.routers ?? []).entries()) {
        yield* s(`${p}.register.routers.${j}.token_file`, t.token_file, "file");
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
    yield* s("router.api.public_key_file", r.api.public_key_file, "file");
    yield* s("router.nats.tls_ca", r.nats?.tls_ca, "certs");
    yield* s("router.backends.ca", r.backends.ca, "certs");
    yield* s("router.backends.cert", r.backends.cert, "certs");
    yield* s("router.backends.key", r.backends.key, "key");
    if (r.access_log.enabled) {
      yield* s("router.access_log.file", r.access_log.file, "parent");
    }
  }
  if (cfg.credhub) {
    const c = cfg.credhub;
    yield* s("credhub.database", c.database, "parent");
    yield* s("credhub.tls_cert_file", c.tls_cert_file, "certs");
    yield* s("credhub.tls_key_file", c.tls_key_file, "key");
    yield* s("credhub.trusted_cas_file", c.trusted_cas_file, "certs");
    yield* s("credhub.public_key_file", c.public_key_file, "file");
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

async function check({ file, kind }: Setting): Promise<string | undefined> {
  if (kind === "secret-parent" || kind === "secret-key") {
    const why = await ownerOnly(file, kind === "secret-parent");
    if (why) return why;
    if (kind === "secret-parent") kind = "parent";
  }
  const target = kind === "parent" ? dirname(file) : file;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(target);
  } catch (err) {
    if (
      err instanceof Deno.errors.NotFound &&
      (kind === "optional-certs" || kind === "optional-key")
    ) {
      return undefined; // not issued yet: the proxy waits for it
    }
    return `cannot use "${target}": ${reason(err)}`;
  }
  const wantDir = kind === "dir" || kind === "ca-dir" || kind === "parent";
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
  if (kind === "key" || kind === "optional-key" || kind === "secret-key") {
    return parseKey(file, text);
  }
  return undefined;
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

/**
 * Loading and checking what the proxy serves: the instance certificate and key,
 * and the trusted client CA bundle. A load either returns a complete, checked
 * set or throws; callers keep the old set on failure (ghostunnel's rule).
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import {
  assertPrivateFile,
  describeError,
  FilePermissionError,
} from "../common/mod.ts";
import { parseCertificate, splitCertificates } from "../pki/mod.ts";
import type { Identity } from "../pki/mod.ts";
import { CredentialsError } from "./errors.ts";

/** A checked certificate + key pair, ready for `setSecureContext`. */
export interface ServedCredentials {
  certPem: string;
  keyPem: string;
  serial: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  uris: string[];
  ips: string[];
  fingerprint256: string;
  /** Present when the certificate carries a Sigil instance identity. */
  identity?: Identity;
  /** Common name of the leaf (the instance id for instance certificates). */
  commonName?: string;
  /** When it was loaded (ms). */
  loadedAt: number;
  /** Identity of the files on disk (path, inode, mtime, size) at load time. */
  signature: string;
}

/** A checked bundle of trusted client CAs. */
export interface TrustBundle {
  pem: string;
  certs: X509Certificate[];
  /** SHA-256 fingerprints of the CA certificates. */
  fingerprints: string[];
  signature: string;
}

/**
 * Describes files as they are on disk now (resolved path, inode, mtime, size),
 * so a symlink swap or rename shows as a change. Missing files count too.
 *
 * @example
 * ```ts
 * import { fileSignature } from "./_credentials.ts";
 * console.assert((await fileSignature(["/nonexistent"])).includes("missing"));
 * ```
 */
export async function fileSignature(paths: string[]): Promise<string> {
  const parts: string[] = [];
  for (const p of paths) {
    try {
      const real = await Deno.realPath(p);
      const st = await Deno.stat(real);
      parts.push(
        `${real}:${st.ino ?? 0}:${st.mtime?.getTime() ?? 0}:${st.size}`,
      );
    } catch {
      parts.push(`${p}:missing`);
    }
  }
  return parts.join("|");
}

/** Options for {@linkcode loadCredentials}. */
export interface LoadCredentialsOptions {
  /** Name used in error messages (instance id or credentials dir). */
  label: string;
  /** "Now" for the validity check (ms). */
  now: number;
}

/**
 * Reads a certificate chain and its key, and checks that the key matches the
 * leaf and that the leaf is valid now.
 *
 * @param certPath PEM file: leaf first, then intermediates.
 * @param keyPath PEM private key (PKCS#8, or PKCS#1 / SEC1).
 * @returns The checked credentials.
 * @throws {CredentialsError} Naming the problem, never the key material.
 *
 * @example
 * ```ts ignore
 * import { loadCredentials } from "./_credentials.ts";
 * const c = await loadCredentials("d/instance.crt", "d/instance.key", { label: "a7c", now: Date.now() });
 * console.log(c.serial, c.notAfter);
 * ```
 */
export async function loadCredentials(
  certPath: string,
  keyPath: string,
  options: LoadCredentialsOptions,
): Promise<ServedCredentials> {
  // The two files are read one after the other: a rotation in between can
  // pair one version's certificate with the next one's key. When the files
  // changed while a load failed, read them again.
  for (let attempt = 1;; attempt++) {
    const before = await fileSignature([certPath, keyPath]);
    try {
      return await loadOnce(certPath, keyPath, options);
    } catch (err) {
      const changed = await fileSignature([certPath, keyPath]) !== before;
      if (!changed || attempt >= 3) throw err;
    }
  }
}

async function loadOnce(
  certPath: string,
  keyPath: string,
  options: LoadCredentialsOptions,
): Promise<ServedCredentials> {
  const { label, now } = options;
  const fail = (code: string, why: string, cause?: unknown): never => {
    throw new CredentialsError(
      code,
      `Cannot load credentials for "${label}": ${why}`,
      { cause },
    );
  };
  const signature = await fileSignature([certPath, keyPath]);
  let certPem = "", keyPem = "";
  try {
    certPem = await Deno.readTextFile(certPath);
  } catch (err) {
    fail(
      "ERR_PROXY_CREDENTIALS_UNREADABLE",
      `cannot read certificate "${certPath}": ${describeError(err)}`,
      err,
    );
  }
  try {
    // A key group or others can read is refused, as the CA refuses its own.
    await assertPrivateFile(keyPath, "key");
    keyPem = await Deno.readTextFile(keyPath);
  } catch (err) {
    if (err instanceof FilePermissionError) {
      fail(err.code, err.message.replace(/^Cannot use /, ""), err);
    }
    fail(
      "ERR_PROXY_CREDENTIALS_UNREADABLE",
      `cannot read key "${keyPath}": ${describeError(err)}`,
      err,
    );
  }
  const first = splitCertificates(certPem)[0];
  if (!first) {
    fail(
      "ERR_PROXY_CREDENTIALS_INVALID",
      `no certificate found in "${certPath}"`,
    );
  }
  let info!: ReturnType<typeof parseCertificate>;
  let leaf!: X509Certificate;
  try {
    info = parseCertificate(first!);
    leaf = new X509Certificate(first!);
  } catch (err) {
    fail(
      "ERR_PROXY_CREDENTIALS_INVALID",
      `certificate "${certPath}" cannot be parsed`,
      err,
    );
  }
  let key!: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    fail(
      "ERR_PROXY_CREDENTIALS_INVALID",
      `key "${keyPath}" cannot be parsed (truncated or not a PEM private key)`,
      err,
    );
  }
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(key);
  } catch {
    matches = false;
  }
  if (!matches) {
    fail(
      "ERR_PROXY_KEY_MISMATCH",
      `key does not match certificate (serial ${info.serial})`,
    );
  }
  if (now < info.notBefore.getTime()) {
    fail(
      "ERR_PROXY_CERT_NOT_VALID",
      `certificate (serial ${info.serial}) is not valid before ${info.notBefore.toISOString()}`,
    );
  }
  if (now > info.notAfter.getTime()) {
    fail(
      "ERR_PROXY_CERT_NOT_VALID",
      `certificate (serial ${info.serial}) expired at ${info.notAfter.toISOString()}`,
    );
  }
  const cn = /(?:^|,\s*)CN=([^,]+)/.exec(info.subject)?.[1];
  return {
    certPem,
    keyPem,
    serial: info.serial,
    subject: info.subject,
    issuer: info.issuer,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    dnsNames: info.dnsNames,
    uris: info.uris,
    ips: info.ips,
    fingerprint256: info.fingerprint256,
    identity: info.identity
      ? {
        instanceId: info.identity.instanceId,
        app: info.identity.app,
        space: info.identity.space,
        org: info.identity.org,
        ips: info.identity.ips,
      }
      : undefined,
    commonName: info.identity?.instanceId ?? cn,
    loadedAt: now,
    signature,
  };
}

/**
 * Reads and concatenates trusted CA files; every file must hold at least one
 * parsable certificate.
 *
 * @throws {CredentialsError} `ERR_PROXY_TRUST_INVALID` or `..._UNREADABLE`.
 * @example
 * ```ts ignore
 * import { loadTrustBundle } from "./_credentials.ts";
 * const t = await loadTrustBundle(["/etc/sigil/router-ca.pem"], "a7c");
 * ```
 */
export async function loadTrustBundle(
  paths: string[],
  label: string,
): Promise<TrustBundle> {
  const signature = await fileSignature(paths);
  const certs: X509Certificate[] = [];
  const pems: string[] = [];
  for (const p of paths) {
    let text: string;
    try {
      text = await Deno.readTextFile(p);
    } catch (err) {
      throw new CredentialsError(
        "ERR_PROXY_CREDENTIALS_UNREADABLE",
        `Cannot load trusted client CAs for "${label}": cannot read "${p}": ${
          describeError(err)
        }`,
        { cause: err },
      );
    }
    const blocks = splitCertificates(text);
    if (blocks.length === 0) {
      throw new CredentialsError(
        "ERR_PROXY_TRUST_INVALID",
        `Cannot load trusted client CAs for "${label}": no certificate in "${p}"`,
      );
    }
    for (const b of blocks) {
      try {
        certs.push(new X509Certificate(b));
      } catch (err) {
        throw new CredentialsError(
          "ERR_PROXY_TRUST_INVALID",
          `Cannot load trusted client CAs for "${label}": a certificate in "${p}" cannot be parsed`,
          { cause: err },
        );
      }
      pems.push(b);
    }
  }
  return {
    pem: pems.join(""),
    certs,
    fingerprints: certs.map((c) => c.fingerprint256.toLowerCase()),
    signature,
  };
}

/**
 * Values of the `user` and `certificate` types as CredHub checks and returns
 * them. `user`: `password_hash` is sha512crypt (`$6$<8-char salt>$...`, 5000
 * rounds), as CredHub's `UserCredentialValue` / `CryptSaltFactory` compute it
 * with commons-codec `Crypt.crypt`. `certificate`: the checks of CredHub's
 * `CertificateCredentialValue` validators, with its error texts, and the facts
 * `CertificateView` adds (`expiry_date`, `certificate_authority`, ...).
 *
 * Where CredHub falls short, Sigil does better: it accepts EC as well as RSA
 * private keys (CredHub's `PrivateKeyReader` takes RSA only), a `ca` bundle
 * whose issuing certificate is not the first, values longer than 7000
 * characters (a column size in CredHub), and reports any self-signed
 * certificate as `self_signed` (CredHub's set path marks only self-signed CAs).
 * @module
 */
import {
  createPrivateKey,
  type KeyObject,
  randomBytes,
  X509Certificate,
} from "node:crypto";
import { encrypt } from "unixcrypt";
import { splitCertificates } from "../pki/mod.ts";
import { CredhubError } from "./errors.ts";
import { MSG } from "./_messages.ts";

const bad = (m: string) => new CredhubError("ERR_CREDHUB_BAD_REQUEST", 400, m);

/** A stored `user` value. */
export interface UserValue {
  username: string | null;
  password: string;
  password_hash: string;
}

/** A stored `certificate` value (CredHub's `CertificateValueView` order). */
export interface CertificateValue {
  ca: string | null;
  certificate: string;
  private_key: string | null;
}

const SALT_CHARS =
  "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * sha512crypt of `password` with a fresh 8-character salt, in crypt(3)'s
 * `$6$salt$hash` form (what `openssl passwd -6 -salt salt` prints).
 *
 * @example
 * ```ts
 * import { passwordHash } from "./_shapes.ts";
 * console.assert(/^\$6\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{86}$/.test(passwordHash("pw")));
 * ```
 */
export function passwordHash(password: string): string {
  // 64 symbols: the low 6 bits of each random byte pick one without bias.
  const salt = [...randomBytes(8)].map((b) => SALT_CHARS[b & 63]).join("");
  return encrypt(password, `$6$${salt}`);
}

/**
 * Checks a `user` value and adds its `password_hash`.
 * @throws {CredhubError} 400 with CredHub's message.
 */
export function checkUserValue(value: unknown): UserValue {
  const v = value as Record<string, unknown> | null;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw bad(MSG.MISSING_VALUE);
  }
  if (typeof v.password !== "string" || v.password === "") {
    throw bad(MSG.MISSING_PASSWORD);
  }
  if (
    v.username !== undefined && v.username !== null &&
    typeof v.username !== "string"
  ) {
    throw bad(MSG.BAD_REQUEST);
  }
  return {
    username: v.username ? v.username as string : null,
    password: v.password,
    password_hash: passwordHash(v.password),
  };
}

function parse(pem: string): X509Certificate[] | undefined {
  try {
    const blocks = splitCertificates(pem);
    return blocks.length
      ? blocks.map((b) => new X509Certificate(b))
      : undefined;
  } catch {
    return undefined;
  }
}

function readKey(pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new CredhubError(
      "ERR_CREDHUB_BAD_REQUEST",
      400,
      `${MSG.MALFORMED_PRIVATE_KEY} Keys must be PEM-encoded PKCS#1, SEC1 or unencrypted PKCS#8 keys.`,
      { cause: err },
    );
  }
}

/**
 * Checks a `certificate` value the way CredHub's set request does.
 * @throws {CredhubError} 400 with CredHub's message.
 */
export function checkCertificateValue(value: unknown): CertificateValue {
  const v = value as Record<string, unknown> | null;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw bad(MSG.MISSING_VALUE);
  }
  const pick = (k: string) =>
    typeof v[k] === "string" && v[k] !== "" ? v[k] as string : null;
  const ca = pick("ca"), certificate = pick("certificate");
  const privateKey = pick("private_key");
  if (!ca && !certificate && !privateKey) {
    throw bad(MSG.MISSING_CERTIFICATE_CREDENTIALS);
  }
  if (!certificate) throw bad(MSG.MISSING_CERTIFICATE);
  const leaf = parse(certificate)?.[0];
  if (!leaf) throw bad(MSG.INVALID_CERTIFICATE_VALUE);
  if (ca) {
    const cas = parse(ca);
    if (!cas) throw bad(MSG.INVALID_CA_VALUE);
    const signer = cas.find((c) =>
      leaf.checkIssued(c) && leaf.verify(c.publicKey)
    );
    if (ca.trim() !== certificate.trim() && !cas.some((c) => c.ca)) {
      throw bad(MSG.INVALID_CA_VALUE);
    }
    if (!signer) throw bad(MSG.CERTIFICATE_WAS_NOT_SIGNED_BY_CA);
  }
  if (privateKey && !leaf.checkPrivateKey(readKey(privateKey))) {
    throw bad(MSG.MISMATCHED_CERTIFICATE_AND_PRIVATE_KEY);
  }
  return { ca, certificate, private_key: privateKey };
}

/** What CredHub's `CertificateView` reports beside the value. */
export interface CertificateFacts {
  expiryDate: Date | null;
  certificateAuthority: boolean;
  selfSigned: boolean;
}

/** Reads the facts of a stored certificate value (null dates when unreadable). */
export function certificateFacts(value: unknown): CertificateFacts {
  const pem = (value as { certificate?: unknown } | null)?.certificate;
  const leaf = typeof pem === "string" ? parse(pem)?.[0] : undefined;
  if (!leaf) {
    return { expiryDate: null, certificateAuthority: false, selfSigned: false };
  }
  return {
    expiryDate: new Date(leaf.validTo),
    certificateAuthority: leaf.ca,
    selfSigned: leaf.checkIssued(leaf) && leaf.verify(leaf.publicKey),
  };
}

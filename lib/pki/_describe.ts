/**
 * What `sigil inspect` shows beyond {@linkcode parseCertificate}: key and
 * signature algorithms, key usage and extended key usage.
 * @module
 */
import * as x509 from "@peculiar/x509";
import { PkiError } from "./errors.ts";

/** Algorithms and usages of one certificate. */
export interface CertDetails {
  /** e.g. `ECDSA P-256`, `RSA 2048`. */
  keyAlgorithm: string;
  /** e.g. `ECDSA with SHA-256`. */
  signatureAlgorithm: string;
  /** Key usage flag names (`digitalSignature`, `keyCertSign` ...). */
  keyUsage: string[];
  /** Extended key usage names (`serverAuth`, `clientAuth`) or OIDs. */
  extendedKeyUsage: string[];
}

const EKU_NAMES = new Map<string, string>(
  Object.entries(x509.ExtendedKeyUsage).map(([name, oid]) => [oid, name]),
);

/**
 * Reads algorithms and usages of a certificate given as PEM or DER.
 *
 * @throws {PkiError} `ERR_PKI_CERT_INVALID` when it does not parse.
 * @example
 * ```ts ignore
 * import { describeCertificate } from "./mod.ts";
 * console.log(describeCertificate(pem).keyAlgorithm); // "ECDSA P-256"
 * ```
 */
export function describeCertificate(cert: string | Uint8Array): CertDetails {
  let c: x509.X509Certificate;
  try {
    c = new x509.X509Certificate(
      typeof cert === "string" ? cert : new Uint8Array(cert),
    );
  } catch (err) {
    throw new PkiError(
      "ERR_PKI_CERT_INVALID",
      "Invalid certificate: it does not parse as X.509",
      { cause: err },
    );
  }
  const key = c.publicKey.algorithm as
    & Algorithm
    & { namedCurve?: string; modulusLength?: number };
  const keyAlgorithm = key.name === "ECDSA" || key.name === "ECDH"
    ? `ECDSA ${key.namedCurve ?? ""}`.trim()
    : key.name.startsWith("RSA")
    ? `RSA ${key.modulusLength ?? ""}`.trim()
    : key.name;
  const sig = c.signatureAlgorithm as Algorithm & { hash?: Algorithm };
  const signatureAlgorithm = `${sig.name.startsWith("RSA") ? "RSA" : sig.name}${
    sig.hash ? ` with ${sig.hash.name}` : ""
  }`;
  const ku = c.getExtension(x509.KeyUsagesExtension);
  const keyUsage = ku
    ? Object.entries(x509.KeyUsageFlags)
      .filter(([, bit]) => typeof bit === "number" && (ku.usages & bit) !== 0)
      .map(([name]) => name)
    : [];
  const eku = c.getExtension(x509.ExtendedKeyUsageExtension);
  const extendedKeyUsage = (eku?.usages ?? []).map((u) =>
    EKU_NAMES.get(String(u)) ?? String(u)
  );
  return { keyAlgorithm, signatureAlgorithm, keyUsage, extendedKeyUsage };
}

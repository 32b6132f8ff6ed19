/**
 * Checking a CA certificate (and its key) before a CA uses it: the key
 * matches, CA:TRUE, path length, keyCertSign, validity, a supported key, and
 * who signed it. node:crypto and @peculiar/x509 read the structures.
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { splitCertificates } from "./_cert.ts";
import { importPrivateKeyPem } from "./_keys.ts";
import type { KeyPair, KeyType } from "./_keys.ts";
import { PkiError } from "./errors.ts";

/** What {@linkcode checkCaCertificate} checks a certificate for. */
export interface CaCheckOptions {
  /** Names the certificate in errors, e.g. `root certificate "ca.pem"`. */
  label: string;
  /** Current time (ms). */
  now: number;
  /** `root`: must be self-signed; `intermediate`: must be signed by `issuerPem`. */
  role: "root" | "intermediate";
  /** The root (PEM) that must have signed an intermediate. */
  issuerPem?: string;
  /** The CA must be allowed to sign a CA below it (path length ≥ 1 or none). */
  signsCa?: boolean;
  /** Its private key (PEM: PKCS#8, PKCS#1 or SEC1); checked to match. */
  keyPem?: string;
}

/** A checked CA certificate. */
export interface CheckedCa {
  /** The certificate alone, as PEM. */
  pem: string;
  keyType: KeyType;
  notAfter: Date;
  /** Present when a key was given. */
  keys?: KeyPair;
}

function fail(label: string, problem: string): never {
  throw new PkiError("ERR_PKI_CA_INVALID", `Cannot use ${label}: ${problem}`);
}

/**
 * Checks one CA certificate (the first in `certPem`) for use by the CA.
 *
 * @returns The certificate, its key type and, when given, its imported key.
 * @throws {PkiError} `ERR_PKI_CA_INVALID` naming the certificate and the problem.
 * @example
 * ```ts ignore
 * import { checkCaCertificate } from "./mod.ts";
 * await checkCaCertificate(rootPem, { label: "root", role: "root", now: Date.now(), keyPem });
 * ```
 */
export async function checkCaCertificate(
  certPem: string,
  o: CaCheckOptions,
): Promise<CheckedCa> {
  const pem = splitCertificates(certPem)[0];
  if (!pem) fail(o.label, "no 'BEGIN CERTIFICATE' block found");
  let cert: X509Certificate, px: x509.X509Certificate;
  try {
    cert = new X509Certificate(pem);
    px = new x509.X509Certificate(pem);
  } catch {
    fail(o.label, "the certificate cannot be parsed");
  }
  const pub = cert.publicKey;
  const d = pub.asymmetricKeyDetails ?? {};
  let keyType: KeyType | undefined;
  if (pub.asymmetricKeyType === "ec") {
    keyType = d.namedCurve === "prime256v1"
      ? "ec-p256"
      : d.namedCurve === "secp384r1"
      ? "ec-p384"
      : undefined;
  } else if (pub.asymmetricKeyType === "rsa") {
    const bits = d.modulusLength;
    keyType = bits === 2048 || bits === 3072 || bits === 4096
      ? `rsa-${bits}`
      : undefined;
  }
  if (!keyType) {
    fail(
      o.label,
      `its key (${pub.asymmetricKeyType} ${
        d.namedCurve ?? d.modulusLength ?? ""
      }) is not supported; use RSA 2048-4096 or EC P-256/P-384`,
    );
  }
  if (o.role === "root") {
    if (cert.issuer !== cert.subject || !cert.verify(pub)) {
      fail(
        o.label,
        "it is not self-signed; give the top of its chain as the root and this one as the intermediate",
      );
    }
  } else if (o.issuerPem !== undefined) {
    const root = new X509Certificate(o.issuerPem);
    if (!cert.checkIssued(root) || !cert.verify(root.publicKey)) {
      fail(
        o.label,
        `it is not signed by the root "${root.subject.replace(/\n/g, ", ")}"`,
      );
    }
  }
  const bc = px.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) {
    fail(
      o.label,
      "it is not a CA certificate (BasicConstraints CA:TRUE missing)",
    );
  }
  if (o.signsCa && bc.pathLength !== undefined && bc.pathLength < 1) {
    fail(
      o.label,
      `its path length is ${bc.pathLength}, so it cannot sign an intermediate CA; import it with an intermediate it signed, or use a root without pathlen:0`,
    );
  }
  const ku = px.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    fail(
      o.label,
      "its key usage lacks keyCertSign, so it may not sign certificates",
    );
  }
  const now = new Date(o.now);
  if (now < px.notBefore) {
    fail(o.label, `it is not valid before ${px.notBefore.toISOString()}`);
  }
  if (now > px.notAfter) {
    fail(o.label, `it expired on ${px.notAfter.toISOString()}`);
  }
  let keys: KeyPair | undefined;
  if (o.keyPem !== undefined) {
    try {
      keys = await importPrivateKeyPem(o.keyPem);
    } catch (err) {
      fail(`the key of ${o.label}`, (err as Error).message);
    }
    if (!cert.checkPrivateKey(createPrivateKey(o.keyPem))) {
      fail(
        o.label,
        "the private key given does not belong to this certificate",
      );
    }
  }
  return { pem, keyType, notAfter: px.notAfter, keys };
}

/**
 * Certificate signing requests: creation on the cell, verification at the CA.
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import type { Identity } from "./_identity.ts";
import { fromBER, Sequence } from "asn1js";
import { fromPem, keyTypeOf, signingAlgorithm } from "./_keys.ts";
import { verifyEcCsr } from "./_fast.ts";
import type { KeyPair, KeyType } from "./_keys.ts";
import { PkiError } from "./errors.ts";

/**
 * Creates a PEM CSR signed by the key pair. The subject is `CN=<instance id>`
 * when an identity is given; the CA decides the final subject and SANs itself.
 *
 * @example
 * ```ts
 * import { createCsr, generateKeyPair } from "./mod.ts";
 * const csr = await createCsr(await generateKeyPair());
 * console.assert(csr.includes("CERTIFICATE REQUEST"));
 * ```
 */
export async function createCsr(
  keys: KeyPair,
  identity?: Identity,
): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: identity
      ? [{ CN: [identity.instanceId] }]
      : [{ CN: ["sigil-instance"] }],
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: signingAlgorithm(keys.type),
  });
  return csr.toString("pem");
}

/** What a verified CSR yields. */
export interface VerifiedCsr {
  publicKey: CryptoKey;
  keyType: KeyType;
}

/**
 * Parses a PEM CSR and checks its self-signature.
 *
 * @param pem The CSR.
 * @returns Its public key and key type.
 * @throws {PkiError} `ERR_PKI_CSR_INVALID` when it is not a CSR, its key type is
 *   unsupported, or its signature does not verify.
 *
 * @example
 * ```ts
 * import { createCsr, generateKeyPair, verifyCsr } from "./mod.ts";
 * const v = await verifyCsr(await createCsr(await generateKeyPair()));
 * console.assert(v.keyType === "ec-p256");
 * ```
 */
export async function verifyCsr(pem: string): Promise<VerifiedCsr> {
  if (
    typeof pem !== "string" ||
    !pem.includes("-----BEGIN CERTIFICATE REQUEST-----")
  ) {
    throw new PkiError(
      "ERR_PKI_CSR_INVALID",
      "Invalid CSR: expected a PEM block 'BEGIN CERTIFICATE REQUEST'",
    );
  }
  const der = fromPem(pem, "CERTIFICATE REQUEST");
  const problem = der ? outerProblem(der) : undefined;
  if (problem) {
    throw new PkiError("ERR_PKI_CSR_INVALID", `Invalid CSR: ${problem}`);
  }
  const fast = der ? await verifyEcCsr(der) : undefined;
  if (fast?.ok) return { publicKey: fast.publicKey, keyType: fast.keyType };
  if (fast) {
    throw new PkiError(
      "ERR_PKI_CSR_INVALID",
      "Invalid CSR: signature does not verify",
    );
  }
  // Anything but a plain ECDSA P-256/P-384 CSR: the general (x509) path.
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new PkiError(
      "ERR_PKI_CSR_INVALID",
      "Invalid CSR: cannot parse the PEM/DER structure",
      {
        cause: err,
      },
    );
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await csr.publicKey.export();
  } catch (err) {
    throw new PkiError(
      "ERR_PKI_CSR_INVALID",
      "Invalid CSR: unsupported public key (use ECDSA P-256/P-384 or RSA 2048/3072/4096)",
      { cause: err },
    );
  }
  const keyType = keyTypeOf(publicKey);
  if (!keyType) {
    throw new PkiError(
      "ERR_PKI_CSR_INVALID",
      "Invalid CSR: unsupported public key (use ECDSA P-256/P-384 or RSA 2048/3072/4096)",
    );
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new PkiError(
      "ERR_PKI_CSR_INVALID",
      "Invalid CSR: signature does not verify",
    );
  }
  return { publicKey, keyType };
}

/**
 * What is wrong with the outer DER structure that the field parsers let
 * through (they read the fields whatever the outer tag, and stop at its
 * end): a tag other than SEQUENCE, or bytes after it. Go's
 * x509.ParseCertificateRequest refuses both ("trailing data"). Input the
 * DER reader cannot read at all is left to the parsers, which word it.
 */
function outerProblem(der: Uint8Array): string | undefined {
  let outer: ReturnType<typeof fromBER>;
  try {
    outer = fromBER(der);
  } catch {
    return undefined;
  }
  if (outer.offset <= 0) return undefined;
  if (!(outer.result instanceof Sequence)) {
    return "its DER structure is not a SEQUENCE";
  }
  if (outer.offset !== der.length) {
    return "bytes after the end of its DER structure; send exactly one DER CSR in the PEM block";
  }
  return undefined;
}

/**
 * PKI: keys (ECDSA P-256 by default), CSRs, the instance certificate profile,
 * and reading identities back out of certificates. Built on WebCrypto and
 * `@peculiar/x509`; no hand-written ASN.1.
 *
 * @example
 * ```ts
 * import { createCsr, generateKeyPair, verifyCsr } from "./mod.ts";
 * const keys = await generateKeyPair("ec-p256");
 * const { keyType } = await verifyCsr(await createCsr(keys));
 * console.assert(keyType === "ec-p256");
 * ```
 * @module
 */
export {
  exportPrivateKeyPem,
  exportPublicKeyPem,
  fromPem,
  generateKeyPair,
  importPrivateKeyPem,
  KEY_TYPES,
  keyTypeOf,
  publicKeyId,
  signingAlgorithm,
  toPem,
} from "./_keys.ts";
export type { KeyPair, KeyType } from "./_keys.ts";
export {
  parseSpiffeId,
  spiffeId,
  validateIdentity,
  validateTrustDomain,
} from "./_identity.ts";
export type { Identity } from "./_identity.ts";
export {
  parseRouterSpiffeId,
  routerSpiffeId,
  validateRouterIdentity,
} from "./_router_identity.ts";
export type { RouterIdentity } from "./_router_identity.ts";
export { createCsr, verifyCsr } from "./_csr.ts";
export type { VerifiedCsr } from "./_csr.ts";
export {
  certificateMatchesKey,
  createIntermediateCa,
  createRootCa,
  issueInstanceCertificate,
  issueRouterCertificate,
  issueServiceCertificate,
  parseCertificate,
  randomSerial,
  splitCertificates,
  splitPem,
  verifyChain,
} from "./_cert.ts";
export type {
  CertInfo,
  InstanceCertOptions,
  IssuedCertificate,
  Issuer,
  ServiceCertOptions,
  ValidityOptions,
} from "./_cert.ts";
export { checkCaCertificate } from "./_cacheck.ts";
export type { CaCheckOptions, CheckedCa } from "./_cacheck.ts";
export { createCrl, normalizeSerial, parseCrl } from "./_crl.ts";
export type { CrlEntry, CrlOptions, ParsedCrl } from "./_crl.ts";
export { describeCertificate } from "./_describe.ts";
export type { CertDetails } from "./_describe.ts";
export { PkiError } from "./errors.ts";

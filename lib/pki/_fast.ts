/**
 * The CA's hot path: building leaf certificates directly with the
 * `@peculiar/asn1-*` schemas (no parse of what was just built), with
 * everything that depends only on the issuer computed once per issuer, and
 * verifying ECDSA CSRs with one key import and one `crypto.subtle.verify`.
 * All DER comes from the libraries' schemas; nothing is hand-encoded.
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { AsnConvert, AsnSerializer, OctetString } from "@peculiar/asn1-schema";
import type { IAsnConvertible } from "@peculiar/asn1-schema";
import * as asn from "@peculiar/asn1-x509";
import { CertificationRequest } from "@peculiar/asn1-csr";
import {
  ECParameters,
  id_ecdsaWithSHA256,
  id_ecdsaWithSHA384,
  id_ecdsaWithSHA512,
  id_ecPublicKey,
  id_secp256r1,
  id_secp384r1,
} from "@peculiar/asn1-ecc";
import { createHash } from "node:crypto";
import { keyTypeOf, signingAlgorithm } from "./_keys.ts";
import type { KeyPair, KeyType } from "./_keys.ts";

/**
 * A schema value whose ASN.1 object tree is built once, by the schema, and
 * then reused (encoding is synchronous, so sharing the tree is safe).
 */
function prebuilt<T extends object>(value: T): T {
  const block = AsnSerializer.toASN(value);
  const v: IAsnConvertible = {
    toASN: () => block,
    fromASN: () => {
      throw new Error("prebuilt ASN.1 value is write-only");
    },
    toSchema: () => {
      throw new Error("prebuilt ASN.1 value has no schema");
    },
  };
  return v as unknown as T;
}

// ---------------------------------------------------------------------------
// Public keys: the SubjectPublicKeyInfo and key identifier of a CryptoKey,
// remembered so a leaf for a key just read from a CSR needs no export.

interface KeyInfo {
  spki: asn.SubjectPublicKeyInfo;
  /** The subjectKeyIdentifier extension (SHA-1 of the subjectPublicKey bits). */
  ski: asn.Extension;
}

const keyInfos = new WeakMap<CryptoKey, KeyInfo>();

function keyInfoOf(spki: asn.SubjectPublicKeyInfo): KeyInfo {
  // Same key identifier as x509.SubjectKeyIdentifierExtension.create().
  const id = createHash("sha1").update(new Uint8Array(spki.subjectPublicKey))
    .digest();
  return {
    spki,
    ski: new asn.Extension({
      extnID: asn.id_ce_subjectKeyIdentifier,
      critical: false,
      extnValue: new OctetString(
        AsnConvert.serialize(new asn.SubjectKeyIdentifier(new Uint8Array(id))),
      ),
    }),
  };
}

/** SPKI and key identifier of `key` (exported and parsed once per key). */
async function keyInfo(key: CryptoKey): Promise<KeyInfo> {
  let info = keyInfos.get(key);
  if (!info) {
    const der = await crypto.subtle.exportKey("spki", key);
    info = keyInfoOf(AsnConvert.parse(der, asn.SubjectPublicKeyInfo));
    keyInfos.set(key, info);
  }
  return info;
}

/** id-ecPublicKey AlgorithmIdentifiers, one prebuilt tree per curve. */
const ecKeyAlgorithms = new Map<string, asn.AlgorithmIdentifier>();

function ecSpki(
  curveOid: string,
  spki: asn.SubjectPublicKeyInfo,
): asn.SubjectPublicKeyInfo {
  let algorithm = ecKeyAlgorithms.get(curveOid);
  if (!algorithm) {
    algorithm = prebuilt(
      new asn.AlgorithmIdentifier({
        algorithm: id_ecPublicKey,
        parameters: AsnConvert.serialize(
          new ECParameters({ namedCurve: curveOid }),
        ),
      }),
    );
    ecKeyAlgorithms.set(curveOid, algorithm);
  }
  return new asn.SubjectPublicKeyInfo({
    algorithm,
    subjectPublicKey: spki.subjectPublicKey,
  });
}

// ---------------------------------------------------------------------------
// CSRs

interface EcCurve {
  oid: string;
  /** DER of the curve's ECParameters, as it appears in a SubjectPublicKeyInfo. */
  der: Uint8Array;
  namedCurve: string;
  type: KeyType;
  /** Length of an uncompressed point. */
  point: number;
}
const EC_CURVES: EcCurve[] = ([
  { oid: id_secp256r1, namedCurve: "P-256", type: "ec-p256", point: 65 },
  { oid: id_secp384r1, namedCurve: "P-384", type: "ec-p384", point: 97 },
] as const).map((c) => ({
  ...c,
  der: new Uint8Array(
    AsnConvert.serialize(new ECParameters({ namedCurve: c.oid })),
  ),
}));

function curveOf(parameters: ArrayBuffer): EcCurve | undefined {
  const p = new Uint8Array(parameters);
  return EC_CURVES.find((c) =>
    c.der.length === p.length && c.der.every((b, i) => b === p[i])
  );
}

const ECDSA_HASHES: Record<string, string> = {
  [id_ecdsaWithSHA256]: "SHA-256",
  [id_ecdsaWithSHA384]: "SHA-384",
  [id_ecdsaWithSHA512]: "SHA-512",
};
const ecFormatter = new x509.AsnEcSignatureFormatter();

/** Outcome of {@linkcode verifyEcCsr}. */
export type FastCsrResult =
  | { ok: true; publicKey: CryptoKey; keyType: KeyType }
  | { ok: false; reason: "signature" }
  /** Not an uncompressed P-256/P-384 key with an ECDSA-SHA2 signature: use the general path. */
  | undefined;

/**
 * Verifies a DER CSR with an ECDSA P-256/P-384 key and an ECDSA-SHA2
 * signature. Returns `undefined` for anything else (unparsable, other key or
 * signature types) so the caller takes the general path, which decides and
 * words the error.
 */
export async function verifyEcCsr(der: Uint8Array): Promise<FastCsrResult> {
  let req: CertificationRequest;
  try {
    req = AsnConvert.parse(der, CertificationRequest);
  } catch {
    return undefined;
  }
  const spki = req.certificationRequestInfo.subjectPKInfo;
  const hash = ECDSA_HASHES[req.signatureAlgorithm.algorithm];
  if (
    !hash || spki.algorithm.algorithm !== id_ecPublicKey ||
    !spki.algorithm.parameters || !req.certificationRequestInfoRaw
  ) return undefined;
  const curve = curveOf(spki.algorithm.parameters);
  const point = new Uint8Array(spki.subjectPublicKey);
  if (!curve || point.length !== curve.point || point[0] !== 0x04) {
    return undefined;
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await crypto.subtle.importKey(
      "raw",
      point,
      { name: "ECDSA", namedCurve: curve.namedCurve },
      true,
      ["verify"],
    );
  } catch {
    return undefined;
  }
  let ok = false;
  try {
    const sig = ecFormatter.toWebSignature(
      { name: "ECDSA", namedCurve: curve.namedCurve } as EcKeyAlgorithm,
      req.signature,
    );
    ok = !!sig && await crypto.subtle.verify(
      { name: "ECDSA", hash },
      publicKey,
      sig,
      new Uint8Array(req.certificationRequestInfoRaw),
    );
  } catch {
    ok = false;
  }
  if (!ok) return { ok: false, reason: "signature" };
  keyInfos.set(publicKey, keyInfoOf(ecSpki(curve.oid, spki)));
  return { ok: true, publicKey, keyType: curve.type };
}

// ---------------------------------------------------------------------------
// Leaves

/** The issuer's constant parts, computed once per issuer certificate + key. */
interface IssuerPrep {
  pem: string;
  key: CryptoKey;
  notAfter: Date;
  name: asn.Name;
  signatureAlgorithm: asn.AlgorithmIdentifier;
  webAlgorithm: Algorithm & { namedCurve?: string };
  ec: boolean;
  /** BasicConstraints CA:FALSE (critical), KU for EC / for RSA (critical), EKU. */
  basicConstraints: asn.Extension;
  keyUsageEc: asn.Extension;
  keyUsageRsa: asn.Extension;
  extKeyUsage: asn.Extension;
  authorityKeyId: asn.Extension;
}

/** The issuer as {@linkcode buildLeafDer} needs it. */
export interface LeafIssuer {
  certPem: string;
  keys: KeyPair;
}

const preps = new WeakMap<LeafIssuer, IssuerPrep>();

/** Converts an `@peculiar/x509` extension into its schema object (once per issuer). */
function asnExtension(e: x509.Extension): asn.Extension {
  return prebuilt(AsnConvert.parse(e.rawData, asn.Extension));
}

async function issuerPrep(issuer: LeafIssuer): Promise<IssuerPrep> {
  const hit = preps.get(issuer);
  if (hit && hit.pem === issuer.certPem && hit.key === issuer.keys.privateKey) {
    return hit;
  }
  const cert = new x509.X509Certificate(issuer.certPem);
  const parsed = AsnConvert.parse(cert.rawData, asn.Certificate);
  // The same merge X509CertificateGenerator.create() does.
  const webAlgorithm = {
    hash: "SHA-256",
    ...signingAlgorithm(issuer.keys.type),
    ...issuer.keys.privateKey.algorithm,
  } as Algorithm & { namedCurve?: string };
  const KU = x509.KeyUsageFlags;
  const prep: IssuerPrep = {
    pem: issuer.certPem,
    key: issuer.keys.privateKey,
    notAfter: cert.notAfter,
    name: prebuilt(parsed.tbsCertificate.subject),
    signatureAlgorithm: prebuilt(
      new x509.AlgorithmProvider().toAsnAlgorithm(webAlgorithm),
    ),
    webAlgorithm,
    ec: webAlgorithm.name === "ECDSA",
    basicConstraints: asnExtension(
      new x509.BasicConstraintsExtension(false, undefined, true),
    ),
    keyUsageEc: asnExtension(
      new x509.KeyUsagesExtension(KU.digitalSignature, true),
    ),
    keyUsageRsa: asnExtension(
      new x509.KeyUsagesExtension(
        KU.digitalSignature | KU.keyEncipherment,
        true,
      ),
    ),
    extKeyUsage: asnExtension(
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
    ),
    authorityKeyId: asnExtension(
      await x509.AuthorityKeyIdentifierExtension.create(cert),
    ),
  };
  preps.set(issuer, prep);
  return prep;
}

/** The issuer certificate's notAfter (parsed once per issuer). */
export async function issuerNotAfter(issuer: LeafIssuer): Promise<Date> {
  return (await issuerPrep(issuer)).notAfter;
}

/** A subject alternative name, as the x509 JSON form names it. */
export interface AltName {
  type: "dns" | "ip" | "url";
  value: string;
}

const OID_CN = "2.5.4.3";
const OID_OU = "2.5.4.11";

/**
 * A subject Name from `[type, value]` RDNs (CN/OU), encoded exactly as
 * `new x509.Name([{CN: [v]}, ...])` encodes it.
 */
export function subjectName(rdns: Array<["CN" | "OU", string]>): asn.Name {
  if (rdns.some(([, v]) => /["\\]/.test(v) || v.startsWith("#"))) {
    // Quoting/escaping rules: let the x509 Name parser decide, as before.
    const json = rdns.map(([t, v]) => ({ [t]: [v] }));
    return AsnConvert.parse(new x509.Name(json).toArrayBuffer(), asn.Name);
  }
  return new asn.Name(rdns.map(([t, v]) =>
    new asn.RelativeDistinguishedName([
      new asn.AttributeTypeAndValue({
        type: t === "CN" ? OID_CN : OID_OU,
        value: new asn.AttributeValue(
          x509.Name.isPrintableString(v)
            ? { printableString: v }
            : { utf8String: v },
        ),
      }),
    ])
  ));
}

function generalName(n: AltName): asn.GeneralName {
  switch (n.type) {
    case "dns":
      return new asn.GeneralName({ dNSName: n.value });
    case "ip":
      return new asn.GeneralName({ iPAddress: n.value });
    case "url":
      return new asn.GeneralName({ uniformResourceIdentifier: n.value });
  }
}

function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

/**
 * The TBSCertificate as a schema value for the outer Certificate: its ASN.1
 * tree (built by the schema) answers `toBER()` with the DER it already
 * produced for signing, so the largest part is not encoded twice. This keeps
 * to asn1js's public `toBER(sizeOnly, writer)` contract.
 */
function encodedOnce<T>(
  block: ReturnType<typeof AsnSerializer.toASN>,
  der: ArrayBuffer,
): T {
  block.toBER = (
    sizeOnly?: boolean,
    writer?: { write(b: ArrayBuffer): void },
  ) => {
    const out = sizeOnly ? new ArrayBuffer(der.byteLength) : der;
    if (!writer) return out;
    writer.write(out);
    return new ArrayBuffer(0);
  };
  const v: IAsnConvertible = {
    toASN: () => block,
    fromASN: () => {
      throw new Error("encoded ASN.1 value is write-only");
    },
    toSchema: () => {
      throw new Error("encoded ASN.1 value has no schema");
    },
  };
  return v as unknown as T;
}

/** Parameters of one leaf. */
export interface LeafSpec {
  publicKey: CryptoKey;
  subject: asn.Name;
  names: AltName[];
  /** Hex serial from randomSerial() (positive, no leading zero byte). */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Builds and signs an end-entity certificate with the same profile, extension
 * order and encoding as the x509 generator path: BasicConstraints CA:FALSE
 * (critical), KeyUsage (critical; + keyEncipherment for RSA keys), EKU
 * serverAuth + clientAuth, SKI, AKI, SAN (when names are given).
 *
 * @returns The certificate DER.
 */
export async function buildLeafDer(
  issuer: LeafIssuer,
  spec: LeafSpec,
): Promise<Uint8Array> {
  const prep = await issuerPrep(issuer);
  const key = await keyInfo(spec.publicKey);
  const rsa = keyTypeOf(spec.publicKey)?.startsWith("rsa") ?? false;
  const extensions = [
    prep.basicConstraints,
    rsa ? prep.keyUsageRsa : prep.keyUsageEc,
    prep.extKeyUsage,
    key.ski,
    prep.authorityKeyId,
  ];
  if (spec.names.length) {
    extensions.push(
      new asn.Extension({
        extnID: asn.id_ce_subjectAltName,
        critical: false,
        extnValue: new OctetString(
          AsnConvert.serialize(
            new asn.SubjectAlternativeName(spec.names.map(generalName)),
          ),
        ),
      }),
    );
  }
  const tbs = new asn.TBSCertificate({
    version: asn.Version.v3,
    serialNumber: hexToBytes(spec.serial).buffer,
    signature: prep.signatureAlgorithm,
    issuer: prep.name,
    validity: new asn.Validity({
      notBefore: spec.notBefore,
      notAfter: spec.notAfter,
    }),
    subject: spec.subject,
    subjectPublicKeyInfo: key.spki,
    extensions: new asn.Extensions(extensions),
  });
  const tbsBlock = AsnSerializer.toASN(tbs);
  const tbsDer = tbsBlock.toBER(false);
  const signature = await crypto.subtle.sign(
    prep.webAlgorithm,
    issuer.keys.privateKey,
    tbsDer,
  );
  const signatureValue = prep.ec
    ? ecFormatter.toAsnSignature(prep.webAlgorithm as EcKeyAlgorithm, signature)
    : signature;
  if (!signatureValue) {
    throw new Error("Cannot convert the ECDSA signature to its ASN.1 form");
  }
  const cert = new asn.Certificate({
    tbsCertificate: encodedOnce<asn.TBSCertificate>(tbsBlock, tbsDer),
    signatureAlgorithm: prep.signatureAlgorithm,
    signatureValue,
  });
  return new Uint8Array(AsnConvert.serialize(cert));
}

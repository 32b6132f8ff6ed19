/**
 * Building certificates (root, intermediate, instance leaf, service leaf) and
 * reading them back. CA certificates are made with `@peculiar/x509`; leaves,
 * the CA's hot path, are built directly from the `@peculiar/asn1-*` schemas
 * by `_fast.ts` (same profile and encoding, without re-parsing the result).
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash } from "node:crypto";
import { spiffeId } from "./_identity.ts";
import type { Identity } from "./_identity.ts";
import { parseRouterSpiffeId, routerSpiffeId } from "./_router_identity.ts";
import type { RouterIdentity } from "./_router_identity.ts";
import {
  importPrivateKeyPem,
  publicKeyId,
  signingAlgorithm,
  toPem,
} from "./_keys.ts";
import { buildLeafDer, issuerNotAfter, subjectName } from "./_fast.ts";
import type { AltName } from "./_fast.ts";
import type { KeyPair } from "./_keys.ts";
import { PkiError } from "./errors.ts";

/** A CA certificate with its key, able to sign. */
export interface Issuer {
  certPem: string;
  keys: KeyPair;
  /** PEM of the issuer's own chain up to (not including) the root; empty for a root. */
  chainPem: string;
}

/** Time and validity options shared by the builders. */
export interface ValidityOptions {
  /** Current time in ms. @default {Date.now()} */
  now?: number;
  /** Lifetime in ms, counted from `now`. */
  validityMs: number;
  /** notBefore = now - backdateMs. @default {60000} */
  backdateMs?: number;
}

/** A freshly built certificate. */
export interface IssuedCertificate {
  pem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** True when notAfter was cut to the issuer's notAfter. */
  clamped: boolean;
}

const KU = x509.KeyUsageFlags;

/**
 * A random positive 128-bit serial number, as lowercase hex.
 *
 * @example
 * ```ts
 * import { randomSerial } from "./_cert.ts";
 * console.assert(randomSerial().length === 32);
 * ```
 */
export function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01 << 6; // positive, and no leading zero byte
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function times(issuerNotAfter: Date | undefined, o: ValidityOptions) {
  const now = o.now ?? Date.now();
  if (!(o.validityMs > 0)) {
    throw new RangeError(
      `Cannot build certificate: validity must be positive (got ${o.validityMs} ms)`,
    );
  }
  const notBefore = new Date(now - (o.backdateMs ?? 60_000));
  let notAfter = new Date(now + o.validityMs);
  let clamped = false;
  if (issuerNotAfter && notAfter > issuerNotAfter) {
    notAfter = issuerNotAfter;
    clamped = true;
  }
  if (notAfter.getTime() <= now) {
    throw new PkiError(
      "ERR_PKI_CERT_INVALID",
      "Cannot build certificate: the issuer has expired",
    );
  }
  // X.509 times have one-second precision.
  notBefore.setUTCMilliseconds(0);
  notAfter.setUTCMilliseconds(0);
  return { notBefore, notAfter, clamped };
}

/**
 * Creates a self-signed root CA.
 *
 * @example
 * ```ts
 * import { createRootCa, generateKeyPair } from "./mod.ts";
 * const root = await createRootCa(await generateKeyPair(), { commonName: "Sigil Root", validityMs: 3600_000 });
 * console.assert(root.pem.includes("CERTIFICATE"));
 * ```
 */
export async function createRootCa(
  keys: KeyPair,
  options: ValidityOptions & { commonName: string },
): Promise<IssuedCertificate> {
  const { notBefore, notAfter } = times(undefined, options);
  const serial = randomSerial();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: [{ CN: [options.commonName] }],
    notBefore,
    notAfter,
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: signingAlgorithm(keys.type),
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(
        KU.keyCertSign | KU.cRLSign | KU.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    pem: cert.toString("pem") + "\n",
    serial,
    notBefore,
    notAfter,
    clamped: false,
  };
}

/**
 * Creates an intermediate CA signed by `issuer` (path length 0).
 *
 * @example
 * ```ts
 * import { createIntermediateCa, createRootCa, generateKeyPair } from "./mod.ts";
 * const rk = await generateKeyPair();
 * const root = await createRootCa(rk, { commonName: "R", validityMs: 7200_000 });
 * const ik = await generateKeyPair();
 * const inter = await createIntermediateCa(ik.publicKey, { certPem: root.pem, keys: rk, chainPem: "" }, { commonName: "I", validityMs: 3600_000 });
 * console.assert(inter.notAfter <= root.notAfter);
 * ```
 */
export async function createIntermediateCa(
  publicKey: CryptoKey,
  issuer: Issuer,
  options: ValidityOptions & { commonName: string },
): Promise<IssuedCertificate> {
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const { notBefore, notAfter, clamped } = times(issuerCert.notAfter, options);
  const serial = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: [{ CN: [options.commonName] }],
    issuer: issuerCert.subjectName,
    notBefore,
    notAfter,
    publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(issuer.keys.type),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        KU.keyCertSign | KU.cRLSign | KU.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuerCert),
    ],
  });
  return {
    pem: cert.toString("pem") + "\n",
    serial,
    notBefore,
    notAfter,
    clamped,
  };
}

/** Options for {@linkcode issueInstanceCertificate}. */
export interface InstanceCertOptions extends ValidityOptions {
  trustDomain: string;
}

/**
 * Issues an instance leaf: CN = instance id; OU = `app:`, `space:`,
 * `organization:`; SAN DNS = instance id, IP = each address, URI = SPIFFE ID;
 * EKU serverAuth + clientAuth. Never outlives the issuer (`clamped` says so).
 * The identity must already be validated.
 *
 * @example
 * ```ts
 * import { createRootCa, generateKeyPair, issueInstanceCertificate, parseCertificate } from "./mod.ts";
 * const rk = await generateKeyPair();
 * const root = await createRootCa(rk, { commonName: "R", validityMs: 7200_000 });
 * const leafKeys = await generateKeyPair();
 * const id = { instanceId: "i-1", app: "a", space: "s", org: "o", ips: ["10.0.0.5"] };
 * const leaf = await issueInstanceCertificate(leafKeys.publicKey, id, { certPem: root.pem, keys: rk, chainPem: "" }, { trustDomain: "t.example", validityMs: 3600_000 });
 * console.assert(parseCertificate(leaf.pem).identity?.instanceId === "i-1");
 * ```
 */
export async function issueInstanceCertificate(
  publicKey: CryptoKey,
  identity: Identity,
  issuer: Issuer,
  options: InstanceCertOptions,
): Promise<IssuedCertificate> {
  const subject: Array<["CN" | "OU", string]> = [
    ["CN", identity.instanceId],
    ["OU", `app:${identity.app}`],
    ["OU", `space:${identity.space}`],
    ["OU", `organization:${identity.org}`],
  ];
  const names: AltName[] = [
    { type: "dns", value: identity.instanceId },
    ...identity.ips.map((ip): AltName => ({ type: "ip", value: ip })),
    { type: "url", value: spiffeId(options.trustDomain, identity) },
  ];
  return await buildLeaf(publicKey, subject, names, issuer, options);
}

/**
 * Issues a router leaf: CN = router name; OU = `router`; SAN DNS = the name
 * and each extra name, IP = each address, URI = `spiffe://<td>/router/<name>`;
 * EKU serverAuth + clientAuth (one pair serves the backend client and the
 * API server). The identity must already be validated.
 *
 * @example
 * ```ts
 * import { createRootCa, generateKeyPair, issueRouterCertificate, parseCertificate } from "./mod.ts";
 * const rk = await generateKeyPair();
 * const root = await createRootCa(rk, { commonName: "R", validityMs: 7200_000 });
 * const leaf = await issueRouterCertificate((await generateKeyPair()).publicKey, { name: "router-1", dnsNames: [], ips: [] }, { certPem: root.pem, keys: rk, chainPem: "" }, { trustDomain: "t.example", validityMs: 3600_000 });
 * console.assert(parseCertificate(leaf.pem).router?.name === "router-1");
 * ```
 */
export async function issueRouterCertificate(
  publicKey: CryptoKey,
  router: RouterIdentity,
  issuer: Issuer,
  options: InstanceCertOptions,
): Promise<IssuedCertificate> {
  const names: AltName[] = [
    ...[router.name, ...router.dnsNames].map((value): AltName => ({
      type: "dns",
      value,
    })),
    ...router.ips.map((ip): AltName => ({ type: "ip", value: ip })),
    { type: "url", value: routerSpiffeId(options.trustDomain, router.name) },
  ];
  return await buildLeaf(
    publicKey,
    [["CN", router.name], ["OU", "router"]],
    names,
    issuer,
    options,
  );
}

/** Options for {@linkcode issueServiceCertificate}. */
export interface ServiceCertOptions extends ValidityOptions {
  commonName: string;
  dnsNames?: string[];
  ips?: string[];
  uris?: string[];
}

/**
 * Issues a leaf for a service (the CA's HTTPS server, a router's client
 * certificate): CN and SANs as given, EKU serverAuth + clientAuth.
 *
 * @example
 * ```ts
 * import { createRootCa, generateKeyPair, issueServiceCertificate } from "./mod.ts";
 * const rk = await generateKeyPair();
 * const root = await createRootCa(rk, { commonName: "R", validityMs: 7200_000 });
 * const c = await issueServiceCertificate((await generateKeyPair()).publicKey, { certPem: root.pem, keys: rk, chainPem: "" }, { commonName: "router", dnsNames: ["router.internal"], validityMs: 3600_000 });
 * console.assert(c.serial.length === 32);
 * ```
 */
export async function issueServiceCertificate(
  publicKey: CryptoKey,
  issuer: Issuer,
  options: ServiceCertOptions,
): Promise<IssuedCertificate> {
  const names: AltName[] = [
    ...(options.dnsNames ?? []).map((v): AltName => ({
      type: "dns",
      value: v,
    })),
    ...(options.ips ?? []).map((v): AltName => ({ type: "ip", value: v })),
    ...(options.uris ?? []).map((v): AltName => ({ type: "url", value: v })),
  ];
  return await buildLeaf(
    publicKey,
    [["CN", options.commonName]],
    names,
    issuer,
    options,
  );
}

async function buildLeaf(
  publicKey: CryptoKey,
  subject: Array<["CN" | "OU", string]>,
  names: AltName[],
  issuer: Issuer,
  options: ValidityOptions,
): Promise<IssuedCertificate> {
  const { notBefore, notAfter, clamped } = times(
    await issuerNotAfter(issuer),
    options,
  );
  const serial = randomSerial();
  const der = await buildLeafDer(issuer, {
    publicKey,
    subject: subjectName(subject),
    names,
    serial,
    notBefore,
    notAfter,
  });
  return {
    pem: toPem(der, "CERTIFICATE"),
    serial,
    notBefore,
    notAfter,
    clamped,
  };
}

/** What {@linkcode parseCertificate} reads out of a certificate. */
export interface CertInfo {
  serial: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  ips: string[];
  uris: string[];
  /** SHA-256 of the DER, lowercase hex with colons. */
  fingerprint256: string;
  isCa: boolean;
  /** Present when the certificate carries a Sigil instance identity. */
  identity?: Identity & { trustDomain?: string; spiffeId?: string };
  /** Present when the certificate carries a Sigil router identity. */
  router?: RouterIdentity & { trustDomain: string; spiffeId: string };
}

/**
 * Splits a PEM bundle into its blocks (each ending with a newline).
 *
 * @example
 * ```ts
 * import { splitPem } from "./_cert.ts";
 * console.assert(splitPem("junk").length === 0);
 * ```
 */
export function splitPem(text: string): string[] {
  return (text.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ??
    []).map((b) => b + "\n");
}

/** The certificate blocks of a PEM bundle. */
export function splitCertificates(text: string): string[] {
  return splitPem(text).filter((b) =>
    b.startsWith("-----BEGIN CERTIFICATE-----")
  );
}

function loadCert(pem: string): x509.X509Certificate {
  const first = splitCertificates(pem)[0];
  if (!first) {
    throw new PkiError(
      "ERR_PKI_CERT_INVALID",
      "Invalid certificate: no 'BEGIN CERTIFICATE' block found",
    );
  }
  try {
    return new x509.X509Certificate(first);
  } catch (err) {
    throw new PkiError(
      "ERR_PKI_CERT_INVALID",
      "Invalid certificate: cannot parse the PEM/DER structure",
      {
        cause: err,
      },
    );
  }
}

/**
 * Reads serial, names, validity and the Sigil identity of the first
 * certificate in `pem`.
 *
 * @throws {PkiError} `ERR_PKI_CERT_INVALID` when there is no parsable certificate.
 * @example
 * ```ts ignore
 * import { parseCertificate } from "./mod.ts";
 * const info = parseCertificate(await Deno.readTextFile("instance.crt"));
 * console.log(info.identity?.instanceId, info.notAfter);
 * ```
 */
export function parseCertificate(pem: string): CertInfo {
  const cert = loadCert(pem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const items = san?.names.items ?? [];
  const dnsNames = items.filter((n) => n.type === "dns").map((n) => n.value);
  const ips = items.filter((n) => n.type === "ip").map((n) => n.value);
  const uris = items.filter((n) => n.type === "url").map((n) => n.value);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const cn = cert.subjectName.getField("CN")[0];
  const ous = cert.subjectName.getField("OU");
  const ou = (prefix: string) =>
    ous.find((v) => v.startsWith(prefix + ":"))?.slice(prefix.length + 1);
  const app = ou("app"), space = ou("space"), org = ou("organization");
  const info: CertInfo = {
    serial: cert.serialNumber.toLowerCase(),
    subject: cert.subject,
    issuer: cert.issuer,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    dnsNames,
    ips,
    uris,
    fingerprint256: createHash("sha256").update(new Uint8Array(cert.rawData))
      .digest("hex")
      .match(/../g)!.join(":"),
    isCa: bc?.ca ?? false,
  };
  const routerUri = uris.map((u) => [u, parseRouterSpiffeId(u)] as const)
    .find(([, r]) => r !== undefined && r.name === cn);
  if (routerUri && ous.includes("router")) {
    info.router = {
      name: cn!,
      dnsNames: dnsNames.filter((d) => d !== cn),
      ips,
      spiffeId: routerUri[0],
      trustDomain: routerUri[1]!.trustDomain,
    };
  }
  if (cn && app && space && org) {
    const spiffe = uris.find((u) => u.startsWith("spiffe://"));
    info.identity = {
      instanceId: cn,
      app,
      space,
      org,
      ips,
      spiffeId: spiffe,
      trustDomain: spiffe ? new URL(spiffe).host : undefined,
    };
  }
  return info;
}

/**
 * True when the private key in `keyPem` belongs to the first certificate in `certPem`.
 *
 * @example
 * ```ts ignore
 * import { certificateMatchesKey } from "./mod.ts";
 * console.log(await certificateMatchesKey(certPem, keyPem));
 * ```
 */
export async function certificateMatchesKey(
  certPem: string,
  keyPem: string,
): Promise<boolean> {
  const cert = loadCert(certPem);
  const keys = await importPrivateKeyPem(keyPem);
  const certKey = await cert.publicKey.export();
  return (await publicKeyId(certKey)) === (await publicKeyId(keys.publicKey));
}

/**
 * Verifies that `chain` (leaf first, then intermediates) leads to one of
 * `roots` with valid signatures and dates at `now`.
 *
 * @returns Nothing; resolves when the chain is good.
 * @throws {PkiError} `ERR_PKI_CERT_INVALID` naming the first problem.
 * @example
 * ```ts ignore
 * import { verifyChain } from "./mod.ts";
 * await verifyChain(await Deno.readTextFile("instance.crt"), await Deno.readTextFile("root.crt"));
 * ```
 */
export async function verifyChain(
  chainPem: string,
  rootsPem: string,
  now = Date.now(),
): Promise<void> {
  const chain = splitCertificates(chainPem).map((p) =>
    new x509.X509Certificate(p)
  );
  const roots = splitCertificates(rootsPem).map((p) =>
    new x509.X509Certificate(p)
  );
  if (chain.length === 0) {
    throw new PkiError("ERR_PKI_CERT_INVALID", "Invalid chain: no certificate");
  }
  if (roots.length === 0) {
    throw new PkiError(
      "ERR_PKI_CERT_INVALID",
      "Invalid trust bundle: no certificate",
    );
  }
  const date = new Date(now);
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (date < cert.notBefore || date > cert.notAfter) {
      throw new PkiError(
        "ERR_PKI_CERT_INVALID",
        `Invalid chain: certificate ${cert.serialNumber} is not valid at ${date.toISOString()}`,
      );
    }
    const next = chain[i + 1];
    if (next) {
      // Only a CA may sign: a leaf's key must not vouch for another cert.
      if (
        cert.issuer !== next.subject ||
        next.getExtension(x509.BasicConstraintsExtension)?.ca !== true
      ) {
        throw new PkiError(
          "ERR_PKI_CERT_INVALID",
          `Invalid chain: certificate ${next.serialNumber} is not the CA that issued ${cert.serialNumber}`,
        );
      }
      if (!(await cert.verify({ publicKey: next, signatureOnly: true }))) {
        throw new PkiError(
          "ERR_PKI_CERT_INVALID",
          `Invalid chain: certificate ${cert.serialNumber} is not signed by ${next.serialNumber}`,
        );
      }
      continue;
    }
    for (const root of roots) {
      if (cert.issuer !== root.subject) continue;
      if (await cert.verify({ publicKey: root, signatureOnly: true })) return;
    }
    throw new PkiError(
      "ERR_PKI_CERT_INVALID",
      `Invalid chain: certificate ${cert.serialNumber} does not chain to the trust bundle`,
    );
  }
}

/**
 * X.509 CRLs (RFC 5280 §5): built and signed with `@peculiar/x509`'s
 * `X509CrlGenerator`, read back with `X509Crl`.
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { AsnConvert } from "@peculiar/asn1-schema";
import { CRLNumber, id_ce_cRLNumber } from "@peculiar/asn1-x509";
import { signingAlgorithm } from "./_keys.ts";
import type { Issuer } from "./_cert.ts";
import { PkiError } from "./errors.ts";

/** One revoked certificate. */
export interface CrlEntry {
  /** Serial number, hex (any case, leading zeros ignored). */
  serial: string;
  revokedAt: Date;
}

/** Options of {@linkcode createCrl}. */
export interface CrlOptions {
  /** thisUpdate, in ms. @default {Date.now()} */
  now?: number;
  /** nextUpdate = thisUpdate + this. @default {86400000} */
  validityMs?: number;
  /** The CRL number (monotonic per issuer). */
  number: number;
}

/** A CRL as a holder of one reads it. */
export interface ParsedCrl {
  /** Revoked serials: lowercase hex without leading zeros. */
  serials: Set<string>;
  issuer: string;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  number: number | undefined;
}

/** A serial as hex without case or leading zeros (node:tls writes `0A1B`). */
export function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+(?=.)/, "");
}

/**
 * Builds a CRL signed by `issuer` (v2, with authority key identifier and CRL
 * number), as PEM.
 *
 * @example
 * ```ts ignore
 * const pem = await createCrl(store.issuer, [{ serial: "4a0f", revokedAt: new Date() }], { number: 1 });
 * ```
 */
export async function createCrl(
  issuer: Issuer,
  entries: readonly CrlEntry[],
  options: CrlOptions,
): Promise<string> {
  const now = options.now ?? Date.now();
  const cert = new x509.X509Certificate(issuer.certPem);
  const crl = await x509.X509CrlGenerator.create({
    issuer: cert.subjectName,
    thisUpdate: new Date(now),
    nextUpdate: new Date(now + (options.validityMs ?? 86_400_000)),
    entries: entries.map((e) => ({
      serialNumber: derSerial(e.serial),
      revocationDate: e.revokedAt,
      // The identity lost its right to the certificate (and an entry
      // without extensions would carry an empty, invalid extension list).
      reason: x509.X509CrlReason.privilegeWithdrawn,
    })),
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(cert, false),
      new x509.Extension(
        id_ce_cRLNumber,
        false,
        AsnConvert.serialize(new CRLNumber(options.number)),
      ),
    ],
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(issuer.keys.type),
  });
  // "X509 CRL" is the label RFC 7468 and OpenSSL use.
  return x509.PemConverter.encode(crl.rawData, "X509 CRL") + "\n";
}

/** Hex of a positive INTEGER: even length, a 00 before a high bit. */
function derSerial(serial: string): string {
  let hex = normalizeSerial(serial);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  return /^[89a-f]/.test(hex) ? `00${hex}` : hex;
}

/**
 * Reads a PEM (or DER) CRL and, when `trusted` holds its issuer, checks its
 * signature.
 *
 * @throws {PkiError} `ERR_PKI_CRL_INVALID` when it is not a CRL, or its
 *   signature does not verify with the trusted certificate of its issuer.
 */
export async function parseCrl(
  data: string | Uint8Array,
  trusted: readonly string[] = [],
): Promise<ParsedCrl> {
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(
      typeof data === "string" ? data : data as unknown as BufferSource,
    );
  } catch (err) {
    throw new PkiError(
      "ERR_PKI_CRL_INVALID",
      `Cannot read CRL: it is not a PEM or DER X.509 CRL (${
        (err as Error).message
      })`,
      { cause: err },
    );
  }
  for (const pem of trusted) {
    const cert = new x509.X509Certificate(pem);
    if (cert.subject !== crl.issuer) continue;
    if (!(await crl.verify({ publicKey: cert }).catch(() => false))) {
      throw new PkiError(
        "ERR_PKI_CRL_INVALID",
        `Cannot use CRL of "${crl.issuer}": its signature does not verify with the trusted certificate ${cert.serialNumber}`,
      );
    }
    break;
  }
  const ext = crl.getExtension(id_ce_cRLNumber);
  const number = ext
    ? Number(AsnConvert.parse(ext.value, CRLNumber).value)
    : undefined;
  return {
    serials: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))),
    issuer: crl.issuer,
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    number,
  };
}

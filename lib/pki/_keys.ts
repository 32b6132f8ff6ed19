/**
 * Key generation, PEM export and import (WebCrypto; PKCS#8 for private keys,
 * PKCS#1 and SEC1 read through node:crypto).
 * @module
 */
import { createPrivateKey } from "node:crypto";
import { PkiError } from "./errors.ts";

/** Supported key algorithms, the one list schemas and CLIs use. */
export const KEY_TYPES = [
  "ec-p256",
  "ec-p384",
  "rsa-2048",
  "rsa-3072",
  "rsa-4096",
] as const;
/** A supported key algorithm. */
export type KeyType = typeof KEY_TYPES[number];

/** A key pair with its Sigil key type. */
export interface KeyPair {
  type: KeyType;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** WebCrypto generation parameters per key type. */
export function keyAlgorithm(
  type: KeyType,
): RsaHashedKeyGenParams | EcKeyGenParams {
  switch (type) {
    case "ec-p256":
      return { name: "ECDSA", namedCurve: "P-256" };
    case "ec-p384":
      return { name: "ECDSA", namedCurve: "P-384" };
    case "rsa-2048":
    case "rsa-3072":
    case "rsa-4096":
      return {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: Number(type.slice(4)),
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      };
  }
}

/** The signature algorithm a key of this type signs with. */
export function signingAlgorithm(type: KeyType): EcdsaParams | Algorithm {
  if (type === "ec-p256") {
    return { name: "ECDSA", hash: "SHA-256" } as EcdsaParams;
  }
  if (type === "ec-p384") {
    return { name: "ECDSA", hash: "SHA-384" } as EcdsaParams;
  }
  return { name: "RSASSA-PKCS1-v1_5" };
}

/** Determines the Sigil key type of a WebCrypto key. */
export function keyTypeOf(key: CryptoKey): KeyType | undefined {
  const alg = key.algorithm as Partial<EcKeyAlgorithm & RsaHashedKeyAlgorithm>;
  if (alg.name === "ECDSA" && alg.namedCurve === "P-256") return "ec-p256";
  if (alg.name === "ECDSA" && alg.namedCurve === "P-384") return "ec-p384";
  if (alg.name === "RSASSA-PKCS1-v1_5" && alg.modulusLength === 2048) {
    return "rsa-2048";
  }
  if (alg.name === "RSASSA-PKCS1-v1_5" && alg.modulusLength === 3072) {
    return "rsa-3072";
  }
  if (alg.name === "RSASSA-PKCS1-v1_5" && alg.modulusLength === 4096) {
    return "rsa-4096";
  }
  return undefined;
}

/**
 * Generates a key pair.
 *
 * @param type Key algorithm. @default {"ec-p256"}
 * @returns The key pair (extractable, so it can be written to disk).
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "./_keys.ts";
 * const k = await generateKeyPair();
 * console.assert(k.type === "ec-p256");
 * ```
 */
export async function generateKeyPair(
  type: KeyType = "ec-p256",
): Promise<KeyPair> {
  const pair = await crypto.subtle.generateKey(keyAlgorithm(type), true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return { type, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/**
 * Encodes DER bytes as PEM with the given label.
 *
 * @example
 * ```ts
 * import { toPem } from "./_keys.ts";
 * console.assert(toPem(new Uint8Array([1, 2, 3]), "TEST").startsWith("-----BEGIN TEST-----"));
 * ```
 */
export function toPem(der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = new Uint8Array(der).toBase64();
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${
    lines.join("\n")
  }\n-----END ${label}-----\n`;
}

/** Decodes the first PEM block with the given label; `undefined` when absent. */
export function fromPem(
  pem: string,
  label: string,
): Uint8Array<ArrayBuffer> | undefined {
  const re = new RegExp(
    `-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`,
  );
  const m = re.exec(pem);
  if (!m) return undefined;
  try {
    return Uint8Array.fromBase64(m[1]!.replace(/\s+/g, ""));
  } catch {
    return undefined;
  }
}

/**
 * Exports the private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
 *
 * @example
 * ```ts
 * import { exportPrivateKeyPem, generateKeyPair } from "./_keys.ts";
 * const pem = await exportPrivateKeyPem(await generateKeyPair());
 * console.assert(pem.includes("PRIVATE KEY"));
 * ```
 */
export async function exportPrivateKeyPem(keys: KeyPair): Promise<string> {
  return toPem(
    await crypto.subtle.exportKey("pkcs8", keys.privateKey),
    "PRIVATE KEY",
  );
}

/** Exports the public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`). */
export async function exportPublicKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await crypto.subtle.exportKey("spki", key), "PUBLIC KEY");
}

const IMPORT_ORDER: KeyType[] = ["ec-p256", "ec-p384", "rsa-2048"];

/**
 * Imports a PEM private key of any supported type, with its public key:
 * PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 (`BEGIN RSA PRIVATE KEY`) or SEC1
 * (`BEGIN EC PRIVATE KEY`), unencrypted.
 *
 * @param pem The key's PEM text.
 * @returns The key pair.
 * @throws {PkiError} `ERR_PKI_KEY_INVALID` when the text is not a supported key.
 *
 * @example
 * ```ts
 * import { exportPrivateKeyPem, generateKeyPair, importPrivateKeyPem } from "./_keys.ts";
 * const pem = await exportPrivateKeyPem(await generateKeyPair("ec-p384"));
 * console.assert((await importPrivateKeyPem(pem)).type === "ec-p384");
 * ```
 */
export async function importPrivateKeyPem(pem: string): Promise<KeyPair> {
  if (/BEGIN ENCRYPTED PRIVATE KEY|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new PkiError(
      "ERR_PKI_KEY_INVALID",
      "Cannot read private key: it is encrypted; decrypt it first with 'openssl pkey -in KEY -out KEY.plain'",
    );
  }
  let der = fromPem(pem, "PRIVATE KEY");
  const legacy = /-----BEGIN (EC|RSA) PRIVATE KEY-----/.exec(pem);
  if (!der && legacy) {
    // PKCS#1 / SEC1: node:crypto reads them; WebCrypto wants PKCS#8.
    try {
      der = new Uint8Array(
        createPrivateKey({ key: pem, format: "pem" }).export({
          type: "pkcs8",
          format: "der",
        }),
      );
    } catch {
      throw new PkiError(
        "ERR_PKI_KEY_INVALID",
        `Cannot read private key: the '${
          legacy[1]
        } PRIVATE KEY' block cannot be parsed`,
      );
    }
  }
  if (!der) {
    throw new PkiError(
      "ERR_PKI_KEY_INVALID",
      "Cannot read private key: expected a PEM block 'BEGIN PRIVATE KEY' (PKCS#8), 'BEGIN RSA PRIVATE KEY' (PKCS#1) or 'BEGIN EC PRIVATE KEY' (SEC1)",
    );
  }
  for (const type of IMPORT_ORDER) {
    const alg = keyAlgorithm(type);
    try {
      const privateKey = await crypto.subtle.importKey(
        "pkcs8",
        der,
        alg,
        true,
        ["sign"],
      );
      const actual = keyTypeOf(privateKey);
      if (!actual) continue;
      const jwk = await crypto.subtle.exportKey("jwk", privateKey);
      const pub: JsonWebKey = {
        kty: jwk.kty,
        crv: jwk.crv,
        x: jwk.x,
        y: jwk.y,
        n: jwk.n,
        e: jwk.e,
      };
      const publicKey = await crypto.subtle.importKey("jwk", pub, alg, true, [
        "verify",
      ]);
      return { type: actual, privateKey, publicKey };
    } catch {
      // try the next algorithm
    }
  }
  throw new PkiError(
    "ERR_PKI_KEY_INVALID",
    "Cannot read private key: not an ECDSA P-256/P-384 or RSA 2048/3072/4096 key",
  );
}

/** A stable comparison form of a public key (JWK members). */
export async function publicKeyId(key: CryptoKey): Promise<string> {
  const jwk = await crypto.subtle.exportKey("jwk", key);
  return JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.n, jwk.e]);
}

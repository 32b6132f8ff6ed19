/**
 * Route-service signatures, byte-compatible with gorouter's so routers of
 * both kinds can share one `route_services_secret` (a request signed by one
 * validates on the other). Followed: gorouter `routeservice/signature.go`,
 * `routeservice/routeservice_config.go`, `common/secure/crypto.go` and
 * `main.go` (`createCrypto`).
 *
 * - Key: PBKDF2-HMAC-SHA256 of the secret, empty salt, 100001 iterations,
 *   16 bytes: AES-128-GCM.
 * - `X-CF-Proxy-Signature`: base64url (padded) of AES-GCM(JSON
 *   `{"forwarded_url","requested_time"}`) with the 16-byte tag appended, as
 *   Go's `Seal` does, no additional data.
 * - `X-CF-Proxy-Metadata`: base64url (padded) of JSON `{"nonce": <std
 *   base64 of the 12-byte nonce>}` (Go's encoding of a `[]byte`).
 * - `requested_time` is RFC 3339 with the fraction's trailing zeros trimmed
 *   (Go's `time.Time` JSON). A signature older than `route_services_timeout`
 *   is expired.
 * - Validation tries the current secret, then the decrypt-only previous one.
 * @module
 */
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, pbkdf2Sync } from "node:crypto";
import { ApplianceError } from "../common/mod.ts";

/** Request header carrying the encrypted signature. */
export const HEADER_SIGNATURE = "X-CF-Proxy-Signature";
/** Request header carrying the URL the route service forwards to. */
export const HEADER_FORWARDED_URL = "X-CF-Forwarded-Url";
/** Request header carrying the nonce. */
export const HEADER_METADATA = "X-CF-Proxy-Metadata";

const PBKDF2_ITERATIONS = 100_001;
const KEY_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** What a signature says: where the request goes and when it was signed. */
export interface SignatureContents {
  forwardedUrl: string;
  /** Signing time in ms since the epoch (gorouter's zero time: -62135596800000). */
  requestedAt: number;
}

/** The two headers a signed request carries (besides the forwarded URL). */
export interface SignedHeaders {
  signature: string;
  metadata: string;
}

/**
 * A route-service signature was refused. `code` is
 * `ERR_ROUTER_RS_SIGNATURE_EXPIRED` (gorouter answers 504) or
 * `ERR_ROUTER_RS_SIGNATURE_INVALID` (502).
 *
 * @example
 * ```ts
 * import { RouteServiceSignatureError } from "./_route_service.ts";
 * const err = new RouteServiceSignatureError(true, "route service request expired");
 * console.assert(err.expired && err.code === "ERR_ROUTER_RS_SIGNATURE_EXPIRED");
 * ```
 */
export class RouteServiceSignatureError extends ApplianceError {
  readonly expired: boolean;
  constructor(expired: boolean, message: string, options?: ErrorOptions) {
    super(
      expired
        ? "ERR_ROUTER_RS_SIGNATURE_EXPIRED"
        : "ERR_ROUTER_RS_SIGNATURE_INVALID",
      message,
      options,
    );
    this.expired = expired;
  }
}

/** Options of {@linkcode RouteServiceSigner}. */
export interface RouteServiceSignerOptions {
  /** `route_services_secret_decrypt_only`: accepted, never used to sign. */
  previousSecret?: string;
  /** Signature lifetime in ms (`route_services_timeout`). @default {60000} */
  timeoutMs?: number;
}

/**
 * Derives the AES-128 key gorouter derives from a secret (PBKDF2-SHA256,
 * empty salt, 100001 iterations). Slow on purpose: call it once.
 */
export function deriveRouteServiceKey(secret: string): Uint8Array {
  return pbkdf2Sync(
    Buffer.from(secret, "utf8"),
    Buffer.alloc(0),
    PBKDF2_ITERATIONS,
    KEY_BYTES,
    "sha256",
  );
}

/**
 * Signs and validates route-service requests with the router's secret(s).
 *
 * @example
 * ```ts
 * import { RouteServiceSigner } from "./_route_service.ts";
 * const signer = new RouteServiceSigner("s3cret");
 * const h = signer.sign("https://app.example.com/x", Date.now());
 * const c = signer.verify(h.signature, h.metadata, Date.now());
 * console.assert(c.forwardedUrl === "https://app.example.com/x");
 * ```
 */
export class RouteServiceSigner {
  readonly #key: Uint8Array;
  readonly #previous: Uint8Array | undefined;
  readonly #timeoutMs: number;

  /**
   * @param secret `route_services_secret` (never logged).
   * @param options Previous secret and signature lifetime.
   */
  constructor(secret: string, options: RouteServiceSignerOptions = {}) {
    this.#key = deriveRouteServiceKey(secret);
    this.#previous = options.previousSecret
      ? deriveRouteServiceKey(options.previousSecret)
      : undefined;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
  }

  /** Signs `forwardedUrl` as of `nowMs` with the current secret. */
  sign(forwardedUrl: string, nowMs: number): SignedHeaders {
    return buildSignature(this.#key, {
      forwardedUrl,
      requestedAt: nowMs,
    });
  }

  /**
   * Decrypts a signature (current secret, then the previous one) and checks
   * its age.
   *
   * @throws {RouteServiceSignatureError} Undecodable, signed with another
   * secret, or older than the timeout.
   */
  verify(
    signature: string,
    metadata: string,
    nowMs: number,
  ): SignatureContents {
    let contents: SignatureContents;
    try {
      contents = readSignature(signature, metadata, this.#key);
    } catch (err) {
      if (this.#previous === undefined) throw err;
      contents = readSignature(signature, metadata, this.#previous);
    }
    // gorouter: time.Since(requested) > timeout.
    if (nowMs - contents.requestedAt > this.#timeoutMs) {
      throw new RouteServiceSignatureError(
        true,
        "route service request expired",
      );
    }
    return contents;
  }
}

/**
 * Encrypts signature contents with `key` (a fresh random nonce), returning
 * the header values, as gorouter's `BuildSignatureAndMetadata`.
 */
export function buildSignature(
  key: Uint8Array,
  contents: SignatureContents,
): SignedHeaders {
  const plain = goJson({
    forwarded_url: contents.forwardedUrl,
    requested_time: formatGoTime(contents.requestedAt),
  });
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const cipher = createCipheriv("aes-128-gcm", key, nonce);
  const sealed = Buffer.concat([
    cipher.update(plain, "utf8"),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  const metadata = goJson({ nonce: Buffer.from(nonce).toString("base64") });
  return {
    signature: sealed.toString("base64url") + padding(sealed.length),
    metadata: Buffer.from(metadata).toString("base64url") +
      padding(Buffer.byteLength(metadata)),
  };
}

/**
 * Decodes and decrypts the headers with `key`, as gorouter's
 * `SignatureContentsFromHeaders`; does not check the age.
 *
 * @throws {RouteServiceSignatureError} On any decoding or decryption failure.
 */
export function readSignature(
  signature: string,
  metadata: string,
  key: Uint8Array,
): SignatureContents {
  if (metadata === "") invalid("no metadata found");
  const meta = parseJson(
    decodeBase64(metadata, URL_ALPHABET, HEADER_METADATA),
    HEADER_METADATA,
  );
  const rawNonce = field(meta, "nonce");
  if (rawNonce !== undefined && rawNonce !== null) {
    if (typeof rawNonce !== "string") invalid("metadata nonce is not a string");
  }
  const nonce = typeof rawNonce === "string"
    ? decodeBase64(rawNonce, STD_ALPHABET, "metadata nonce")
    : new Uint8Array(0);
  const sealed = decodeBase64(signature, URL_ALPHABET, HEADER_SIGNATURE);
  if (nonce.length !== NONCE_BYTES) invalid("incorrect nonce length");
  if (sealed.length < TAG_BYTES) authFailed();
  let plain: string;
  try {
    const decipher = createDecipheriv("aes-128-gcm", key, nonce);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    plain = Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]).toString("utf8");
  } catch {
    authFailed();
  }
  const body = parseJson(plain, HEADER_SIGNATURE);
  const url = field(body, "forwarded_url");
  const time = field(body, "requested_time");
  if (url !== undefined && url !== null && typeof url !== "string") {
    invalid("signature forwarded_url is not a string");
  }
  if (time !== undefined && time !== null && typeof time !== "string") {
    invalid("signature requested_time is not a string");
  }
  return {
    forwardedUrl: typeof url === "string" ? url : "",
    // Go leaves a missing time at its zero value, which is always expired.
    requestedAt: typeof time === "string" ? parseGoTime(time) : GO_ZERO_TIME,
  };
}

/** Go's zero `time.Time` (0001-01-01T00:00:00Z) in ms since the epoch. */
export const GO_ZERO_TIME = -62_135_596_800_000;

const URL_ALPHABET = /^[A-Za-z0-9_-]*$/;
const STD_ALPHABET = /^[A-Za-z0-9+/]*$/;

/**
 * Strict padded base64 as Go's `base64.URLEncoding` / `StdEncoding`
 * `DecodeString`: right alphabet, padding to a multiple of 4 (CR and LF are
 * ignored, as Go does).
 */
function decodeBase64(s: string, alphabet: RegExp, what: string): Uint8Array {
  const t = s.replace(/[\r\n]/g, "");
  const pad = t.endsWith("==") ? 2 : t.endsWith("=") ? 1 : 0;
  const body = t.slice(0, t.length - pad);
  if (t.length % 4 !== 0 || !alphabet.test(body)) {
    invalid(
      `${what} is not padded base64${alphabet === URL_ALPHABET ? "url" : ""}`,
    );
  }
  return new Uint8Array(Buffer.from(body, "base64"));
}

function padding(bytes: number): string {
  return "=".repeat((3 - (bytes % 3)) % 3);
}

function parseJson(text: string | Uint8Array, what: string): unknown {
  const s = typeof text === "string" ? text : new TextDecoder().decode(text);
  try {
    return JSON.parse(s);
  } catch {
    invalid(`${what} is not JSON`);
  }
}

/** A JSON object's field, matched as Go does (exact name, else any case). */
function field(obj: unknown, name: string): unknown {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    invalid("expected a JSON object");
  }
  const o = obj as Record<string, unknown>;
  if (Object.hasOwn(o, name)) return o[name];
  for (const k of Object.keys(o)) {
    if (k.toLowerCase() === name) return o[k];
  }
  return undefined;
}

/** JSON as Go's `json.Marshal` writes it (`<`, `>`, `&`, U+2028/9 escaped). */
function goJson(value: Record<string, string>): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** RFC 3339 in UTC with the fraction's trailing zeros trimmed (Go's RFC3339Nano). */
export function formatGoTime(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-12-04T18:33:36.120Z
  const [head, frac] = iso.slice(0, -1).split(".");
  const trimmed = (frac ?? "").replace(/0+$/, "");
  return trimmed === "" ? `${head}Z` : `${head}.${trimmed}Z`;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses an RFC 3339 time as Go's `time.Time.UnmarshalJSON` (nanosecond
 * fractions and offsets allowed) to ms since the epoch.
 */
export function parseGoTime(s: string): number {
  const m = RFC3339.exec(s);
  if (m === null) invalid("signature requested_time is not an RFC 3339 time");
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as number[];
  const date = new Date(0);
  date.setUTCFullYear(y!, mo! - 1, d!);
  date.setUTCHours(h!, mi!, se!, 0);
  let ms = date.getTime() + Number(((m[7] ?? "") + "000").slice(0, 3));
  if (m[8] !== "Z") {
    const offset = (Number(m[10]) * 60 + Number(m[11])) * 60_000;
    ms += m[9] === "+" ? -offset : offset;
  }
  return ms;
}

function invalid(reason: string): never {
  throw new RouteServiceSignatureError(false, reason);
}

function authFailed(): never {
  // Go's crypto/cipher says "cipher: message authentication failed".
  invalid(
    "message authentication failed (signed with another route_services_secret?)",
  );
}

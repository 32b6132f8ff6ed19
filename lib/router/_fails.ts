/**
 * Sorting backend failures into what the router may do next, by `err.code`
 * (never by message text). Modelled on gorouter's `proxy/fails` classifiers.
 *
 * Every failure that happens before a request byte could reach the backend
 * (dial, TLS handshake, identity check) is safe to retry on another endpoint.
 * Handshake and identity failures of a TLS endpoint also prune it at once: the
 * registration is stale or wrong, and integrity says it must not be used.
 * @module
 */

/** What went wrong with one attempt, coarse enough to pick a status code. */
export type FailureKind =
  | "dial"
  | "identity"
  | "untrusted"
  | "handshake"
  | "cert_refused"
  | "reset"
  | "timeout"
  | "other";

const DIAL_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ERR_ROUTER_DIAL_TIMEOUT",
]);

const IDENTITY_CODES = new Set([
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_ROUTER_IDENTITY_MISMATCH",
]);

const UNTRUSTED_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
  "INVALID_PURPOSE",
]);

/**
 * The backend's alert says it refused the router's client certificate (or
 * wanted one): gorouter's `RemoteFailedCertCheck` (bad_certificate,
 * unknown_ca, certificate_required).
 */
const CERT_REFUSED =
  /ALERT_(?:BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_REQUIRED)$/;
/**
 * Deno's node:tls reports a TLS 1.2 certificate_required alert under the
 * code ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE; only the alert name in its
 * message tells it apart (the one place a message is read).
 */
const CERT_REFUSED_ALERT =
  /received fatal alert: (?:BadCertificate|UnknownCA|CertificateRequired)$/;

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

/** The TCP connection could not be opened (refused, unreachable, timed out). */
export function isDialError(err: unknown): boolean {
  return DIAL_CODES.has(codeOf(err));
}

/** The backend's certificate does not name the registered instance id. */
export function isIdentityError(err: unknown): boolean {
  return IDENTITY_CODES.has(codeOf(err));
}

/** The backend's certificate chain is untrusted, expired or not yet valid. */
export function isUntrustedCertError(err: unknown): boolean {
  return UNTRUSTED_CODES.has(codeOf(err));
}

/**
 * The TLS handshake failed for another reason: the peer is not TLS, wants a
 * client certificate we lack, rejected ours, sent an alert, or timed out.
 */
export function isHandshakeError(err: unknown): boolean {
  const code = codeOf(err);
  return code.startsWith("ERR_SSL_") || code === "EPROTO" ||
    code === "ERR_ROUTER_HANDSHAKE_TIMEOUT" ||
    (code.startsWith("ERR_TLS_") && !IDENTITY_CODES.has(code));
}

/** The backend refused the router's client certificate, or wanted one. */
export function isCertRefusedError(err: unknown): boolean {
  if (CERT_REFUSED.test(codeOf(err))) return true;
  const message = (err as { message?: unknown } | null)?.message;
  return codeOf(err).startsWith("ERR_SSL_") && typeof message === "string" &&
    CERT_REFUSED_ALERT.test(message);
}

/** The connection was reset or closed under us. */
export function isConnResetError(err: unknown): boolean {
  const code = codeOf(err);
  return code === "ECONNRESET" || code === "EPIPE" || code === "ECONNABORTED";
}

/**
 * Classifies a failure. `phase` says how far the attempt got: a reset during
 * the TLS handshake is a handshake failure (a strict backend closing on a
 * client certificate it does not trust shows up only as ECONNRESET), and
 * anything after the response head (`"response"`) is a reset.
 */
export function classifyFailure(
  err: unknown,
  phase: "dial" | "handshake" | "sent" | "response",
): FailureKind {
  // The body broke off after the response head: the connection went away.
  if (phase === "response") return "reset";
  if (isIdentityError(err)) return "identity";
  if (isUntrustedCertError(err)) return "untrusted";
  if (isDialError(err)) return "dial";
  if (isCertRefusedError(err)) return "cert_refused";
  if (isHandshakeError(err)) return "handshake";
  if (isConnResetError(err)) {
    return phase === "handshake" ? "handshake" : "reset";
  }
  if (codeOf(err) === "ERR_ROUTER_REQUEST_TIMEOUT") return "timeout";
  return phase === "handshake" ? "handshake" : "other";
}

/** HTTP status for a request whose last attempt failed this way (gorouter's table). */
export function failureStatus(kind: FailureKind): number {
  switch (kind) {
    case "identity":
      return 503;
    case "untrusted":
      return 526;
    case "handshake":
      return 525;
    case "cert_refused":
      return 496;
    case "timeout":
      return 504;
    default:
      return 502;
  }
}

/** Whether a TLS endpoint that failed this way is removed from its pools. */
export function isPrunable(kind: FailureKind): boolean {
  return kind === "identity" || kind === "untrusted" || kind === "handshake" ||
    kind === "cert_refused" ||
    kind === "dial";
}

/** A short, stable reason for `X-Cf-Routererror: endpoint_failure (<reason>)`. */
export function failureReason(err: unknown, kind: FailureKind): string {
  const code = codeOf(err);
  return code !== "" ? code : kind;
}

/**
 * Bodies of the statuses an endpoint failure can end in, as gorouter's
 * `proxy/round_tripper/error_handler.go` writes them.
 */
const FAILURE_BODY: Record<number, string> = {
  496: "496 SSL Certificate Required",
  502: "502 Bad Gateway: Registered endpoint failed to handle the request.",
  503: "503 Service Unavailable",
  504: "504 Gateway Timeout",
  525: "525 SSL Handshake Failed",
  526: "526 Invalid SSL Certificate",
};

/** The answer's body for an endpoint failure that ends in `status`. */
export function failureBody(status: number): string {
  return FAILURE_BODY[status] ?? FAILURE_BODY[502]!;
}

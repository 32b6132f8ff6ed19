/**
 * What the router does with a client's `X-Forwarded-Client-Cert` and
 * `X-Forwarded-Proto`, as gorouter's `handlers/clientcert.go`,
 * `handlers/x_forwarded_proto.go` and the skip/force-delete rules in
 * `proxy/proxy.go` (`SkipSanitize`, `SkipSanitizeXFP`,
 * `ForceDeleteXFCCHeader`) decide it, with gorouter's defaults
 * (`forwarded_client_cert: always_forward`, `sanitize_forwarded_proto: false`,
 * `force_forwarded_proto_https: false`, from `config/config.go`).
 * @module
 */

/** `router.forwarded_client_cert` (gorouter's names). */
export type ForwardedClientCertMode =
  | "always_forward"
  | "forward"
  | "sanitize_set";

/** How one request arrived, for {@linkcode forwardedClientCert}. */
export interface ArrivedOver {
  /** Came in on the HTTPS listener (Go's `r.TLS != nil`). */
  tls: boolean;
  /** DER of the client's certificate, when the TLS front asked for one. */
  peerCert?: Uint8Array;
  /**
   * Came back from the route service of its route with a signature
   * (`IsRouteServiceTraffic` / `ArrivedViaRouteService`); an invalid one is
   * answered 502/504 before any backend sees the request.
   */
  fromRouteService: boolean;
}

/**
 * The `X-Forwarded-Client-Cert` value sent to the backend, or `undefined` for
 * none:
 * - `always_forward`: the client's header as it is;
 * - `forward`: the client's header only when it presented a certificate over
 *   TLS (a TLS-terminating load balancer in front that sets the header for its
 *   own mTLS clients);
 * - `sanitize_set`: never the client's header; over TLS with a client
 *   certificate, that certificate's DER in base64 (PEM without the armour and
 *   line breaks, as gorouter's `sanitize()`).
 *
 * Route-service traffic over TLS skips the sanitizing, and with `forward` a
 * request back from a route service never carries the header.
 *
 * @param mode `router.forwarded_client_cert`.
 * @param value The client's header (undefined when it sent none).
 * @param over How the request arrived.
 * @example
 * ```ts
 * import { forwardedClientCert } from "./_forwarded.ts";
 * const plain = { tls: false, fromRouteService: false };
 * console.assert(forwardedClientCert("always_forward", "x", plain) === "x");
 * console.assert(forwardedClientCert("forward", "x", plain) === undefined);
 * ```
 */
export function forwardedClientCert(
  mode: ForwardedClientCertMode,
  value: string | undefined,
  over: ArrivedOver,
): string | undefined {
  let out = value;
  const skip = over.fromRouteService && over.tls;
  if (!skip) {
    if (mode === "forward") {
      if (!over.tls || over.peerCert === undefined) out = undefined;
    } else if (mode === "sanitize_set") {
      out = over.tls && over.peerCert !== undefined
        ? base64(over.peerCert)
        : undefined;
    }
  }
  if (over.fromRouteService && mode === "forward") out = undefined;
  return out;
}

/** `router.sanitize_forwarded_proto` and `router.force_forwarded_proto_https`. */
export interface ForwardedProtoSettings {
  sanitize: boolean;
  forceHttps: boolean;
}

/**
 * The `X-Forwarded-Proto` value sent to the backend: `https` when forced;
 * the listener's scheme when sanitizing or when the client sent none (or an
 * empty one, as Go's `Header.Get() == ""`); else the client's. Requests back
 * from a route service keep theirs.
 *
 * @param s The settings.
 * @param value The client's header (undefined when it sent none).
 * @param over How the request arrived.
 * @example
 * ```ts
 * import { forwardedProto } from "./_forwarded.ts";
 * const s = { sanitize: false, forceHttps: false };
 * const plain = { tls: false, fromRouteService: false };
 * console.assert(forwardedProto(s, "https", plain) === "https");
 * console.assert(forwardedProto({ ...s, sanitize: true }, "https", plain) === "http");
 * ```
 */
export function forwardedProto(
  s: ForwardedProtoSettings,
  value: string | undefined,
  over: ArrivedOver,
): string | undefined {
  if (over.fromRouteService) return value;
  if (s.forceHttps) return "https";
  if (s.sanitize || value === undefined || value === "") {
    return over.tls ? "https" : "http";
  }
  return value;
}

function base64(der: Uint8Array): string {
  let s = "";
  for (let i = 0; i < der.length; i += 0x8000) {
    s += String.fromCharCode(...der.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * Header and cookie helpers of the data path: hop-by-hop sets, Host parsing,
 * W3C trace context, sticky-session cookies. String work only, no regexes.
 * @module
 */

/** {@linkcode REQUEST_HEADER} value: not forwarded (hop-by-hop or set by the router). */
export const RH_DROP = 1;
export const RH_CONNECTION = 2;
export const RH_UPGRADE = 3;
export const RH_HOST = 4;
export const RH_FORWARDED_FOR = 5;
export const RH_FORWARDED_PROTO = 6;
export const RH_REQUEST_START = 7;
export const RH_TRACEPARENT = 8;
export const RH_COOKIE = 9;
export const RH_USER_AGENT = 10;
export const RH_REFERER = 11;
export const RH_CONTENT_LENGTH = 12;
export const RH_CF_APP_INSTANCE = 13;
export const RH_IDEMPOTENCY_KEY = 14;
/** `traceparent`, `tracestate`: replaced when W3C tracing is on. */
export const RH_W3C = 15;
/** `b3`, `x-b3-*`: completed when Zipkin tracing is on. */
export const RH_B3 = 16;
/** `x-forwarded-client-cert`: per `router.forwarded_client_cert`. */
export const RH_FORWARDED_CLIENT_CERT = 17;

/**
 * Request headers the data path treats specially, so one Map lookup per
 * header sorts them: hop-by-hop ones (RFC 9110 §7.6.1) and the ones the
 * router sets itself are dropped, the ones it reads are noted. Headers not
 * in the map are forwarded as they are.
 */
export const REQUEST_HEADER: ReadonlyMap<string, number> = new Map([
  ["connection", RH_CONNECTION],
  ["keep-alive", RH_DROP],
  ["proxy-connection", RH_DROP],
  ["te", RH_DROP],
  ["trailer", RH_DROP],
  ["transfer-encoding", RH_DROP],
  ["upgrade", RH_UPGRADE],
  ["proxy-authorization", RH_DROP],
  ["proxy-authenticate", RH_DROP],
  ["x-cf-applicationid", RH_DROP],
  ["x-cf-instanceid", RH_DROP],
  ["x-cf-instanceindex", RH_DROP],
  ["x-vcap-request-id", RH_DROP],
  ["host", RH_HOST],
  ["x-forwarded-for", RH_FORWARDED_FOR],
  ["x-forwarded-proto", RH_FORWARDED_PROTO],
  ["x-forwarded-client-cert", RH_FORWARDED_CLIENT_CERT],
  ["x-request-start", RH_REQUEST_START],
  ["traceparent", RH_W3C],
  ["tracestate", RH_W3C],
  ["b3", RH_B3],
  ["x-b3-traceid", RH_B3],
  ["x-b3-spanid", RH_B3],
  ["x-b3-parentspanid", RH_B3],
  ["x-b3-sampled", RH_B3],
  ["x-b3-flags", RH_B3],
  ["cookie", RH_COOKIE],
  ["user-agent", RH_USER_AGENT],
  ["referer", RH_REFERER],
  ["content-length", RH_CONTENT_LENGTH],
  ["x-cf-app-instance", RH_CF_APP_INSTANCE],
  ["idempotency-key", RH_IDEMPOTENCY_KEY],
  ["x-idempotency-key", RH_IDEMPOTENCY_KEY],
]);
/** Response headers not passed back. */
export const HOP_RESPONSE = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "x-vcap-request-id",
]);
const TRACEPARENT_LEN = 55;
const HEX = "0123456789abcdef";

/** `Host` header value → lowercased hostname without port. */
export function hostname(hostHeader: string): string {
  if (hostHeader === "") return "";
  if (hostHeader.charCodeAt(0) === 91) {
    const end = hostHeader.indexOf("]");
    return (end === -1 ? hostHeader : hostHeader.slice(0, end + 1))
      .toLowerCase();
  }
  const colon = hostHeader.lastIndexOf(":");
  return (colon === -1 ? hostHeader : hostHeader.slice(0, colon)).toLowerCase();
}

/**
 * Removes the headers a `Connection` header names (hop-by-hop by
 * declaration) from a flat `[name, value, ...]` list of lowercase names.
 */
export function dropConnectionTokens(
  headers: string[],
  connection: string,
): void {
  for (const token of connection.split(",")) {
    const t = token.trim().toLowerCase();
    if (t === "" || t === "close" || t === "keep-alive" || t === "host") {
      continue;
    }
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (headers[i] === t) headers.splice(i, 2);
    }
  }
}

/** A version-00 W3C traceparent header value. */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * W3C trace context: keep the caller's trace id and flags with a new parent
 * id (our span), or start a trace using the request id as the trace id.
 */
export function traceparent(
  incoming: string | undefined,
  requestId: string,
): string {
  const span = randomHex(8);
  if (
    incoming !== undefined && incoming.length === TRACEPARENT_LEN &&
    incoming.startsWith("00-") && incoming.charCodeAt(35) === 45 &&
    incoming.charCodeAt(52) === 45 && TRACEPARENT.test(incoming) &&
    !incoming.startsWith("00-00000000000000000000000000000000")
  ) {
    return `00-${incoming.slice(3, 35)}-${span}-${incoming.slice(53)}`;
  }
  const trace = requestId.replaceAll("-", "");
  return `00-${trace}-${span}-01`;
}

const RANDOM = new Uint8Array(8);
function randomHex(bytes: number): string {
  crypto.getRandomValues(RANDOM);
  let s = "";
  for (let i = 0; i < bytes; i++) {
    const b = RANDOM[i]!;
    s += HEX[b >> 4]! + HEX[b & 15]!;
  }
  return s;
}

/**
 * The instance a request is pinned to: its first `__VCAP_ID__`, when a
 * sticky cookie (one of `names`) comes with it, or always with
 * `anyVcap` (gorouter's `Authorization: Negotiate` case).
 */
export function stickyTarget(
  cookie: string,
  names: string[],
  anyVcap = false,
): string | undefined {
  let vcap: string | undefined;
  let hasSticky = anyVcap;
  for (const part of cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (name === "__VCAP_ID__") vcap ??= part.slice(eq + 1).trim();
    else if (names.includes(name)) hasSticky = true;
  }
  return hasSticky && vcap !== undefined && vcap !== "" ? vcap : undefined;
}

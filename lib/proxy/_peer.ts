/**
 * Strict mode (mutual TLS) decisions: which client SANs are allowed, and why a
 * client certificate was refused. The TLS layer's own verdict
 * (`socket.authorized`) decides; this file only names the reason precisely.
 * @module
 */
import { X509Certificate } from "node:crypto";
import type { DetailedPeerCertificate, PeerCertificate } from "node:tls";
import { parseCertificate, toPem } from "../pki/mod.ts";

/** Why a client was refused. Stable keys for metrics and logs. */
export type RefusalReason =
  | "no-cert"
  | "unknown-ca"
  | "expired"
  | "san-not-allowed"
  | "invalid-cert"
  | "revoked"
  | "handshake-error";

/** Every refusal reason, in display order. */
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  "no-cert",
  "unknown-ca",
  "expired",
  "san-not-allowed",
  "invalid-cert",
  "revoked",
  "handshake-error",
];

/**
 * True when `san` matches `pattern` (DNS case-insensitive, `*` matches one or
 * more characters inside one label; URIs exact).
 *
 * @example
 * ```ts
 * import { sanMatches } from "./_peer.ts";
 * console.assert(sanMatches("*.service.cf.internal", "gorouter.service.cf.internal"));
 * console.assert(!sanMatches("*.service.cf.internal", "a.b.service.cf.internal"));
 * ```
 */
export function sanMatches(pattern: string, san: string): boolean {
  let match = matchers.get(pattern);
  if (match === undefined) {
    if (matchers.size >= SAN_CACHE_MAX) matchers.clear();
    matchers.set(pattern, match = compilePattern(pattern));
  }
  return match(san);
}

/** Compiled patterns: they come from the config, so there are few. */
const matchers = new Map<string, (san: string) => boolean>();

function compilePattern(pattern: string): (san: string) => boolean {
  if (pattern.includes("://")) return (san) => pattern === san;
  // One anchored expression per pattern: `*` is one or more characters
  // inside one label, every other character literal, DNS case-insensitive.
  const re = new RegExp(
    "^" +
      pattern.split(".").map((label) =>
        label.split("*").map(escapeRegExp).join("[^.]+")
      ).join("\\.") + "$",
    "i",
  );
  return (san) => re.test(san);
}

const sanCache = new Map<string, { dns: string[]; uris: string[] }>();
const SAN_CACHE_MAX = 1024;

/**
 * DNS names and URIs of a peer certificate, read from its DER with the PKI
 * parser (node's `subjectaltname` text cannot be split safely: a DNS name may
 * itself contain ", DNS:"). Cached by fingerprint, since the same client
 * certificate (the router's) makes most connections.
 */
export function peerSans(
  cert: PeerCertificate | undefined,
): { dns: string[]; uris: string[] } {
  const raw = cert?.raw as Uint8Array | undefined;
  if (!raw || raw.length === 0) return { dns: [], uris: [] };
  const key = cert!.fingerprint256 ?? "";
  const hit = key ? sanCache.get(key) : undefined;
  if (hit) return hit;
  let sans = { dns: [] as string[], uris: [] as string[] };
  try {
    const info = parseCertificate(toPem(new Uint8Array(raw), "CERTIFICATE"));
    sans = { dns: info.dnsNames, uris: info.uris };
  } catch {
    // Unparsable: no names, so no pattern can match.
  }
  if (key) {
    if (sanCache.size >= SAN_CACHE_MAX) sanCache.clear();
    sanCache.set(key, sans);
  }
  return sans;
}

/** True when any SAN of the certificate matches any allowed pattern. */
export function sanAllowed(
  cert: PeerCertificate | undefined,
  allowed: readonly string[],
): boolean {
  if (allowed.length === 0) return true;
  const { dns, uris } = peerSans(cert);
  return allowed.some((p) =>
    p.includes("://")
      ? uris.some((u) => sanMatches(p, u))
      : dns.some((d) => sanMatches(p, d))
  );
}

/**
 * Names why the TLS layer did not authorize a client certificate: missing,
 * expired (or not yet valid), not chaining to a trusted CA, or otherwise
 * invalid (wrong key usage, bad signature in the chain).
 *
 * @param peer `socket.getPeerCertificate(true)`.
 * @param trusted The trusted client CAs.
 * @param now "Now" in ms.
 * @example
 * ```ts
 * import { classifyRefusal } from "./_peer.ts";
 * console.assert(classifyRefusal(undefined, [], Date.now()) === "no-cert");
 * ```
 */
export function classifyRefusal(
  peer: DetailedPeerCertificate | PeerCertificate | undefined,
  trusted: readonly X509Certificate[],
  now: number,
): RefusalReason {
  const all = peerChain(peer);
  if (all.length === 0) return "no-cert";
  // Keep only the prefix whose links verify: the runtime may fill in an
  // issuer by name alone, which must not count as reaching a trusted CA.
  const chain = [all[0]!];
  for (let i = 1; i < all.length; i++) {
    const prev = chain[chain.length - 1]!, next = all[i]!;
    if (!safe(() => prev.checkIssued(next) && prev.verify(next.publicKey))) {
      break;
    }
    chain.push(next);
  }
  const trustedFps = new Set(trusted.map((t) => t.fingerprint256));
  for (const c of chain) {
    if (trustedFps.has(c.fingerprint256)) continue;
    const from = Date.parse(c.validFrom), to = Date.parse(c.validTo);
    if (now < from || now > to) return "expired";
  }
  const reaches = chain.some((c) =>
    trustedFps.has(c.fingerprint256) ||
    trusted.some((t) => safe(() => c.checkIssued(t) && c.verify(t.publicKey)))
  );
  return reaches ? "invalid-cert" : "unknown-ca";
}

function peerChain(
  peer: DetailedPeerCertificate | PeerCertificate | undefined,
): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<unknown>();
  let cur = peer as DetailedPeerCertificate | undefined;
  while (cur && cur.raw && cur.raw.length > 0 && !seen.has(cur)) {
    seen.add(cur);
    const x = safe(() => new X509Certificate(cur!.raw));
    if (x && !out.some((o) => o.fingerprint256 === x.fingerprint256)) {
      out.push(x);
    }
    cur = cur.issuerCertificate;
    if (out.length > 8) break;
  }
  return out;
}

function safe<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

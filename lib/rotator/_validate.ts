/**
 * Checks a certificate before it may replace (or keep standing as) the
 * current one: it parses, belongs to the key, names the expected identity, is
 * within its validity and chains to the trust bundle.
 * @module
 */
import {
  certificateMatchesKey,
  parseCertificate,
  splitCertificates,
  verifyChain,
} from "../pki/mod.ts";
import type { CertInfo, Identity } from "../pki/mod.ts";
import { RotatorError } from "./errors.ts";

/** What {@linkcode checkPair} needs. */
export interface PairCheck {
  /** Leaf first, then intermediates. */
  certPem: string;
  keyPem: string;
  identity: Identity;
  /** Set for a router entry: the certificate must name this router instead. */
  router?: { name: string; dnsNames: string[] };
  /** Trust bundle (roots). */
  bundlePem: string;
  now: number;
}

/**
 * Validates a key/certificate pair.
 *
 * @returns The parsed leaf.
 * @throws {RotatorError} `ERR_ROTATOR_CERT_INVALID`, naming the first problem.
 * @example
 * ```ts ignore
 * import { checkPair } from "./_validate.ts";
 * const info = await checkPair({ certPem, keyPem, identity, bundlePem, now: Date.now() });
 * ```
 */
export async function checkPair(check: PairCheck): Promise<CertInfo> {
  const id = check.identity.instanceId;
  const fail = (why: string, cause?: unknown) =>
    new RotatorError(
      "ERR_ROTATOR_CERT_INVALID",
      `Cannot accept certificate for "${id}": ${why}`,
      cause === undefined ? undefined : { cause },
    );
  if (splitCertificates(check.certPem).length === 0) {
    throw fail("no certificate in PEM");
  }
  let info: CertInfo;
  try {
    info = parseCertificate(check.certPem);
  } catch (err) {
    throw fail("cannot parse the certificate", err);
  }
  let matches = false;
  try {
    matches = await certificateMatchesKey(check.certPem, check.keyPem);
  } catch (err) {
    throw fail(`cannot compare key and certificate ${info.serial}`, err);
  }
  if (!matches) throw fail(`key does not match certificate ${info.serial}`);
  const got = info.identity;
  const want = check.identity;
  if (check.router) {
    const r = info.router;
    if (
      !r || r.name !== check.router.name ||
      !sameSet(r.dnsNames, check.router.dnsNames.filter((d) => d !== r.name)) ||
      !sameSet(r.ips, want.ips)
    ) {
      throw fail(
        `certificate ${info.serial} names a different identity (${
          r
            ? `router "${r.name}", dns [${r.dnsNames.join(", ")}], ips [${
              r.ips.join(", ")
            }]`
            : "no Sigil router identity"
        })`,
      );
    }
  } else if (
    !got || got.instanceId !== want.instanceId || got.app !== want.app ||
    got.space !== want.space || got.org !== want.org ||
    !sameSet(got.ips, want.ips)
  ) {
    throw fail(
      `certificate ${info.serial} names a different identity (${
        describe(got)
      })`,
    );
  }
  if (info.isCa) throw fail(`certificate ${info.serial} is a CA certificate`);
  if (check.now >= info.notAfter.getTime()) {
    throw fail(
      `certificate ${info.serial} expired at ${info.notAfter.toISOString()}`,
    );
  }
  try {
    await verifyChain(check.certPem, check.bundlePem, check.now);
  } catch (err) {
    throw fail((err as Error).message, err);
  }
  return info;
}

function sameSet(a: string[], b: string[]): boolean {
  const norm = (xs: string[]) => [...new Set(xs.map(normIp))].sort().join(",");
  return norm(a) === norm(b);
}

function normIp(ip: string): string {
  // IPv6 text forms differ (compressed or not); compare lowercased, compressed.
  if (!ip.includes(":")) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname;
  } catch {
    return ip.toLowerCase();
  }
}

function describe(id: Identity | undefined): string {
  if (!id) return "no Sigil identity";
  return `instance "${id.instanceId}", app "${id.app}", space "${id.space}", org "${id.org}", ips [${
    id.ips.join(", ")
  }]`;
}

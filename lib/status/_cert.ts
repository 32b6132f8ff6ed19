/**
 * One certificate as the status pages show it.
 * @module
 */
import { parseCertificate } from "../pki/mod.ts";
import type { CertSummary } from "./_types.ts";

/**
 * Summarises the first certificate of a PEM text (serial, identity, expiry).
 *
 * @param role What the certificate is for (shown as is).
 * @param pem PEM text; only the first certificate is read.
 * @param now Clock ms for `time_left_ms`.
 * @throws {SyntaxError} When `pem` holds no certificate.
 * @example
 * ```ts ignore
 * certSummary("api", await Deno.readTextFile("api.crt"), Date.now());
 * ```
 */
export function certSummary(
  role: string,
  pem: string,
  now: number,
): CertSummary {
  const c = parseCertificate(pem);
  const identity = c.identity?.instanceId ?? c.uris[0] ?? c.dnsNames[0] ??
    c.ips[0] ?? "";
  return {
    role,
    serial: c.serial,
    subject: c.subject,
    identity,
    not_after: c.notAfter.toISOString(),
    time_left_ms: c.notAfter.getTime() - now,
  };
}

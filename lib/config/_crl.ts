/** The `crl` block of the proxy and of the router's `backends`. @module */
import { z } from "zod";
import { Duration, FilePath, safeJwksUrl } from "./_common.ts";

/**
 * Where a TLS holder loads the CA's certificate revocation list: a revoked
 * serial is refused at the handshake from the first reload that lists it.
 */
export const CrlSource = z.strictObject({
  /** The CA's CRL, e.g. `https://ca.internal:8443/v1/crl.pem`. */
  url: z.url(),
  /**
   * PEM bundle trusted for the CA's HTTPS certificate (the CA's root.crt);
   * add the intermediate to have the CRL's signature checked as well.
   */
  ca_bundle: FilePath.optional(),
  /** Time between reloads; a failed reload keeps the last good CRL. */
  refresh: Duration.prefault("1m"),
  /** Time limit of one fetch. */
  timeout: Duration.prefault("10s"),
}).refine((c) => safeJwksUrl(c.url), {
  message:
    "must be an https:// URL (http:// only on loopback): a CRL fetched in the clear could be replaced",
  path: ["url"],
}).refine((c) => c.refresh >= 1000, {
  message: "must be at least 1s",
  path: ["refresh"],
});
/** A resolved `crl` block. */
export type CrlSource = z.output<typeof CrlSource>;

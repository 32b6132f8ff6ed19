/**
 * Certificate revocation for TLS holders: {@linkcode CrlWatcher} keeps the
 * CA's `/v1/crl.pem` fresh so the proxy (client certificates) and the router
 * (backend certificates) refuse a revoked serial at the handshake.
 *
 * @example
 * ```ts ignore
 * import { CrlWatcher } from "./mod.ts";
 * const crl = new CrlWatcher({ url: "https://ca.internal:8443/v1/crl.pem", caBundle, refreshMs: 60_000, holder: "router", logger });
 * await crl.start();
 * if (crl.isRevoked(cert.serialNumber)) throw new Error("revoked");
 * ```
 * @module
 */
export { CrlWatcher } from "./_watcher.ts";
export type { CrlState, CrlWatcherOptions } from "./_watcher.ts";

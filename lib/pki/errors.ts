/** Errors of the PKI concern. @module */
import { ApplianceError } from "../common/errors.ts";

/**
 * A certificate, key, CSR or identity that cannot be used. Codes:
 * `ERR_PKI_IDENTITY_INVALID`, `ERR_PKI_CSR_INVALID`, `ERR_PKI_KEY_INVALID`,
 * `ERR_PKI_CERT_INVALID`, `ERR_PKI_CA_INVALID` (a CA certificate or key
 * that cannot be imported).
 *
 * @example
 * ```ts
 * import { PkiError } from "./errors.ts";
 * const e = new PkiError("ERR_PKI_CSR_INVALID", "Cannot read CSR: not PEM");
 * console.assert(e.name === "PkiError");
 * ```
 */
export class PkiError extends ApplianceError {}

/**
 * The certificate authority: `sigil ca init|issue|token|serve|revoke|ledger`. Issues
 * instance certificates from CSRs under the policy carried by the caller's
 * ES256 token, records every decision in a SQLite ledger, and serves
 * `POST /v1/sign`, `GET /v1/bundle.pem`, `GET /v1/jwks.json`, `/healthz`,
 * `/metrics` over HTTPS.
 *
 * @example
 * ```ts ignore
 * import { initCa, mintToken, startCa } from "./mod.ts";
 * const store = await initCa("/tmp/ca");
 * const token = await mintToken(store, { subject: "cell-1", scopes: ["cert.issue"], apps: ["*"], spaces: ["*"], orgs: ["*"], cidrs: ["10.0.0.0/8"] });
 * const ca = await startCa({ ...config.ca!, dir: "/tmp/ca" });
 * ```
 * @module
 */
export { CaError } from "./errors.ts";
export {
  CA_FILES,
  importCa,
  initCa,
  loadCa,
  renewIntermediate,
} from "./_store.ts";
export type {
  CaMeta,
  CaStore,
  ImportCaOptions,
  InitCaOptions,
  PreviousIntermediate,
  RenewedIntermediate,
  RenewIntermediateOptions,
} from "./_store.ts";
// The token contract lives in lib/token; re-exported for the CA's callers.
export {
  jwks,
  mintToken,
  SCOPES,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
} from "../token/mod.ts";
export type { Scope, TokenClaims, TokenGrant } from "../token/mod.ts";
export {
  authorize,
  authorizeRouter,
  cidrMatcher,
  globMatch,
} from "./_policy.ts";
export { Ledger } from "./_ledger.ts";
export type { LedgerEntry, LedgerRow, LedgerStore } from "./_ledger.ts";
export { openCaStores, openLedgerStore, PgLedger } from "./_ledger_pg.ts";
export type { CaStores } from "./_ledger_pg.ts";
export { PgRevocations } from "./_revocations_pg.ts";
export { migrate, MIGRATIONS } from "./_pg.ts";
export { REVOCATION_KINDS, SqliteRevocations } from "./_revocations.ts";
export type {
  Revocation,
  RevocationKind,
  RevocationStore,
  RevokedCertificate,
} from "./_revocations.ts";
export { CertificateAuthority, SignRequest } from "./_authority.ts";
export type { AuthorityOptions, SignResponse } from "./_authority.ts";
export { createCaApp } from "./_api.ts";
export { startCa } from "./_serve.ts";
export type { CaDeps, RunningCa } from "./_serve.ts";
export { CA_COMMANDS } from "./cli.ts";

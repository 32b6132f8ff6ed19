/**
 * `sigil credhub`: a CredHub-compatible credential store (encrypted SQLite or
 * PostgreSQL, CredHub's API and v2 permissions, mTLS instance identities and bearer
 * tokens), and `sigil launch`, which interpolates `VCAP_SERVICES` for an app.
 *
 * @example
 * ```ts ignore
 * import { startCredhub } from "./mod.ts";
 * const ch = await startCredhub(config.credhub!);
 * ```
 * @module
 */
export { startCredhub } from "./_server.ts";
export type { CredhubDeps, RunningCredhub } from "./_server.ts";
export { createCredhubApp } from "./_api.ts";
export type { CredhubAppOptions, Principal } from "./_api.ts";
export { SqliteCredentialStore } from "./_store.ts";
export { openCredentialStore, PgCredentialStore } from "./_store_pg.ts";
export type {
  CredentialStore,
  CredentialVersion,
  Permission,
} from "./_store.ts";
export { CredhubError } from "./errors.ts";

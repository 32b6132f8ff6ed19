/**
 * Configuration: one YAML file, a zod `strictObject` per section (`ca`,
 * `rotator`, `proxy`, `router`, `dev`), defaults in the schema, and errors that
 * name every problem with its path and line.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./mod.ts";
 * const cfg = parseConfig("ca:\n  dir: /var/lib/sigil/ca\n");
 * console.assert(cfg.ca?.default_validity === 86_400_000);
 * ```
 * @module
 */
export { Config } from "./schema.ts";
export type { ConfigInput } from "./schema.ts";
export { loadConfig, parseConfig, requireSection } from "./load.ts";
export { ConfigError } from "./errors.ts";
export { assertConfigFiles, checkConfigFiles } from "./_files.ts";
export type { ConfigIssue } from "./errors.ts";
export {
  Address,
  Duration,
  FilePath,
  formatAddress,
  IdentityValue,
  isLoopback,
  KeyType,
} from "./_common.ts";
export { CaSection } from "./_ca.ts";
export type { LedgerStoreConfig, PostgresStore } from "./_ca_store.ts";
export { CrlSource } from "./_crl.ts";
export { RotatorSection } from "./_rotator.ts";
export { checkSanPattern, ProxySection } from "./_proxy.ts";
export { readTokenRequired, RouterSection } from "./_router.ts";
export { DevSection } from "./_dev.ts";
export { CredhubSection, CredhubUaaSection } from "./_credhub.ts";
export { LaunchPort, LaunchSection } from "./_launch.ts";
export type { LaunchSectionInput } from "./_launch.ts";

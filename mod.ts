/**
 * Sigil as a library: start any role in-process, build and read instance
 * certificates, validate configuration. The `sigil` command line (`main.ts`)
 * is a thin layer over these.
 *
 * @example
 * ```ts ignore
 * import { startDev } from "./mod.ts";
 * const dev = await startDev({ port: 0 });
 * console.log(dev.info.router.http);
 * await dev.close();
 * ```
 * @module
 */

// Configuration
export {
  Address,
  CaSection,
  Config,
  ConfigError,
  DevSection,
  Duration,
  loadConfig,
  parseConfig,
  ProxySection,
  requireSection,
  RotatorSection,
  RouterSection,
} from "./lib/config/mod.ts";
export type { ConfigInput, ConfigIssue } from "./lib/config/mod.ts";

// Shared pieces
export {
  ApplianceError,
  formatDuration,
  parseDuration,
  systemClock,
  UsageError,
} from "./lib/common/mod.ts";
export type { Clock } from "./lib/common/mod.ts";
export { createLogger, MetricsRegistry } from "./lib/observe/mod.ts";
export type { Logger, LogLevel } from "./lib/observe/mod.ts";

// PKI
export {
  certificateMatchesKey,
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  issueInstanceCertificate,
  parseCertificate,
  PkiError,
  spiffeId,
  validateIdentity,
  verifyChain,
  verifyCsr,
} from "./lib/pki/mod.ts";
export type { CertInfo, Identity, KeyPair, KeyType } from "./lib/pki/mod.ts";

// Roles
export { CaError, initCa, loadCa, mintToken, startCa } from "./lib/ca/mod.ts";
export type { CaStore, RunningCa, TokenGrant } from "./lib/ca/mod.ts";
export {
  readCredentials,
  RotatorError,
  runOnce,
  startRotator,
} from "./lib/rotator/mod.ts";
export type { RunningRotator } from "./lib/rotator/mod.ts";
export { HttpRouteSink, startProxy } from "./lib/proxy/mod.ts";
export type { RunningProxy } from "./lib/proxy/mod.ts";
export { Registry, RouterError, startRouter } from "./lib/router/mod.ts";
export type { RunningRouter } from "./lib/router/mod.ts";
export {
  NatsRouteBus,
  parseRegistryMessage,
  RegistryMessageError,
} from "./lib/routes/mod.ts";
export type { RegistryMessage, RouteSink } from "./lib/routes/mod.ts";
export { demonstrateMisroute, startDev } from "./lib/dev/mod.ts";
export type { DevJson, RunningDev } from "./lib/dev/mod.ts";

/**
 * The rotator: keeps every instance's key and certificate fresh. Each renewal
 * makes a new key on the cell and sends a CSR to the CA; the new pair is
 * validated, then swapped in atomically (versioned directory + symlink
 * rename), so readers never see a torn pair. Renews at 2/3 of the lifetime
 * with jitter, backs off while the CA is unavailable, and reports state as
 * structured logs and Prometheus metrics.
 *
 * @example
 * ```ts
 * import { backoffDelay, jitteredRenewalTime } from "./mod.ts";
 * const at = jitteredRenewalTime(0, 3_600_000, { kind: "fraction", fraction: 0.667 }, 0.1, Math.random());
 * console.assert(at > 0 && at < 3_600_000);
 * console.assert(backoffDelay({ initial: 1000, max: 300_000, jitter: 0 }, 20, 0) === 300_000);
 * ```
 * @module
 */
export { runOnce, startRotator } from "./_rotator.ts";
export type { OnceResult, RotatorDeps, RunningRotator } from "./_rotator.ts";
export type {
  InstanceStatus,
  RenewReason,
  RotatorInstance,
} from "./_worker.ts";
export {
  CaEndpoints,
  createCaSigner,
  isFailoverError,
  signRequestBody,
} from "./_client.ts";
export type {
  CaSigner,
  CaSignerOptions,
  Signer,
  SignRequest,
  SignRequestBody,
  SignResult,
} from "./_client.ts";
export {
  CERT_FILE,
  CredentialStore,
  KEY_FILE,
  readCredentials,
} from "./_store.ts";
export type { RecoveryReport, StoredPair, StoreOptions } from "./_store.ts";
export { checkPair } from "./_validate.ts";
export type { PairCheck } from "./_validate.ts";
export { RotatorMetrics } from "./_metrics.ts";
export { backoffDelay, jitteredRenewalTime, renewalTime } from "./_schedule.ts";
export type { Backoff, RenewPoint } from "./_schedule.ts";
export { CaRequestError, RotatorError } from "./errors.ts";
export { ROTATOR_COMMANDS } from "./cli.ts";

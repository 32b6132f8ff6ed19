/**
 * Shared building blocks: the error base class, durations, the clock, and the
 * subcommand shape used by `main.ts`.
 *
 * @example
 * ```ts
 * import { ApplianceError, parseDuration } from "./mod.ts";
 * console.assert(parseDuration("2m") === 120_000);
 * console.assert(new ApplianceError("ERR_X", "x").code === "ERR_X");
 * ```
 * @module
 */
export {
  ApplianceError,
  describeError,
  describeFetchError,
  redactSecrets,
  UsageError,
} from "./errors.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export { systemClock } from "./clock.ts";
export type { Clock, TimerId } from "./clock.ts";
export { listFlag, requireFlag, stringFlag } from "./command.ts";
export { oneSegment } from "./tls_response.ts";
export { clientAddress, describeListenError } from "./listen.ts";
export { watchSignals } from "./signals.ts";
export { redactUrl } from "./url.ts";
export { readTokenFile, TokenFileError } from "./token_file.ts";
export { assertPrivateFile, FilePermissionError } from "./file_mode.ts";
export { writeSecretFile } from "./secret_file.ts";
export type { WriteSecretFileOptions } from "./secret_file.ts";
export { VERSION } from "./version.ts";
export type { SignalWatch } from "./signals.ts";
export type { Command, FlagSpec, FlagValues } from "./command.ts";
export { systemdNotifier } from "./sd_notify.ts";
export type { Notifier, NotifierOptions } from "./sd_notify.ts";

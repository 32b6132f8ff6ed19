/**
 * `sigil launch`: what Diego's launcher does before an app starts
 * (buildpackapplifecycle `credhub/credhub.go`, `env/env.go`): replace the
 * `credhub-ref`s of `VCAP_SERVICES` with the credentials CredHub gives this
 * instance (mTLS with its instance certificate), set the `CF_INSTANCE_*`
 * variables, and run the app with that environment.
 *
 * @example
 * ```ts ignore
 * import { prepareLaunchEnv, runChild } from "./mod.ts";
 * const env = await prepareLaunchEnv(config.launch!, { logger });
 * Deno.exit(await runChild(["./server"], env, logger));
 * ```
 * @module
 */
export { prepareLaunchEnv, runChild, runLaunch } from "./_launch.ts";
export type { LaunchDeps } from "./_launch.ts";
export { goOrderedJson, interpolateServices } from "./_interpolate.ts";
export type { InterpolateOptions } from "./_interpolate.ts";
export { instanceEnv } from "./_env.ts";
export { LaunchError } from "./errors.ts";
export { LAUNCH_COMMANDS } from "./cli.ts";

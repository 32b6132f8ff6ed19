/**
 * `sigil dev`: the whole system in one process on 127.0.0.1, on a throw-away
 * CA: rotator, a demo app (three instances of `hello`, one of `other`), one
 * strict-mTLS proxy per instance, the router with its registration API, and
 * a CredHub holding a binding credential only `hello` may read.
 *
 * @example
 * ```ts ignore
 * import { startDev } from "./mod.ts";
 * const dev = await startDev({ port: 0 });
 * const res = await fetch(`http://${dev.info.router.http}/`, { headers: { host: "hello.localhost" } });
 * await dev.close();
 * ```
 * @module
 */
export { startDev } from "./_dev.ts";
export type {
  DevInstanceInfo,
  DevJson,
  DevOptions,
  RunningDev,
} from "./_dev.ts";
export { demonstrateMisroute } from "./_misroute.ts";
export type { MisrouteReport } from "./_misroute.ts";
export { startDemoApp } from "./_demo_app.ts";
export type {
  DemoCredentials,
  DemoInstance,
  RunningDemoApp,
} from "./_demo_app.ts";
export type { DevCredhub } from "./_credhub.ts";
export { DEV_COMMANDS } from "./cli.ts";

/**
 * The per-instance TLS proxy (Cloud Foundry's per-container Envoy, rebuilt):
 * terminates TLS with each instance's credentials, optionally requires a
 * client certificate (strict mode), pipes bytes to the app, reloads
 * credentials without dropping connections, serves an admin API, and
 * registers the instance's routes with the routers.
 *
 * @example
 * ```ts ignore
 * import { parseConfig } from "../config/mod.ts";
 * import { startProxy } from "./mod.ts";
 * const cfg = parseConfig(`
 * proxy:
 *   admin_listen: 127.0.0.1:0
 *   instances:
 *     - credentials_dir: /var/lib/sigil/instances/a7c
 *       mode: tls
 *       listeners: [{ listen: "127.0.0.1:0", app: "127.0.0.1:8080" }]
 * `).proxy!;
 * const proxy = await startProxy(cfg);
 * console.log(proxy.instances[0]!.listeners[0]!.port);
 * await proxy.close();
 * ```
 * @module
 */
export { startProxy } from "./_proxy.ts";
export type {
  BoundListener,
  CloseOptions,
  ProxyDeps,
  ProxyStats,
  RunningProxy,
  ServedCertInfo,
} from "./_proxy.ts";
export type { ReloadOutcome } from "./_instance.ts";
export type { ListenerStats } from "./_listener.ts";
export { HttpRouteSink } from "./_http_sink.ts";
export type { HttpRouteSinkOptions } from "./_http_sink.ts";
export { buildRegistryMessage } from "./_register.ts";
export type { MessageInput, NamedSink, RegisterConfig } from "./_register.ts";
export { REFUSAL_REASONS, sanMatches } from "./_peer.ts";
export type { RefusalReason } from "./_peer.ts";
export { CredentialsError, ListenError, RegistrationError } from "./errors.ts";
export { PROXY_COMMANDS } from "./cli.ts";

/**
 * `sigil router`: Host-based HTTP routing with route integrity. Every request
 * goes to an endpoint from the route table over TLS, and the backend must
 * prove (its certificate's SAN) that it is the instance the table named; a
 * backend that cannot is pruned and the next endpoint is tried. Routes arrive
 * through the HTTP registration API or NATS (Cloud Foundry's message shape).
 *
 * @example
 * ```ts
 * import { startRouter } from "./mod.ts";
 * import { RouterSection } from "../config/mod.ts";
 * import { silentLogger } from "../observe/mod.ts";
 * const router = await startRouter(RouterSection.parse({
 *   listen: "127.0.0.1:0",
 *   api: { enabled: false },
 *   access_log: { enabled: false },
 * }), { logger: silentLogger });
 * router.apply("register", {
 *   host: "10.0.0.5",
 *   tls_port: 61001,
 *   uris: ["hello.example.com"],
 *   server_cert_domain_san: "a1",
 * });
 * console.assert(router.registry.lookup("hello.example.com", "/")?.size === 1);
 * await router.close();
 * ```
 * @module
 */
export { startRouter } from "./_router.ts";
export type { RouteBusLike, RouterDeps, RunningRouter } from "./_router.ts";
export { Registry, splitUri } from "./_registry.ts";
export type { ApplyResult, RegistryOptions, RouteJson } from "./_registry.ts";
export { Endpoint, Pool } from "./_pool.ts";
export type { Balancing, EndpointMeta, PickMiss } from "./_pool.ts";
export {
  classifyFailure,
  failureStatus,
  isConnResetError,
  isDialError,
  isHandshakeError,
  isIdentityError,
  isPrunable,
  isUntrustedCertError,
} from "./_fails.ts";
export type { FailureKind } from "./_fails.ts";
export { RouterAuthError, RouterError } from "./errors.ts";
export { ROUTER_COMMANDS } from "./cli.ts";

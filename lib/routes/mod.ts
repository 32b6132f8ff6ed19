/**
 * The route registration protocol: Cloud Foundry's `router.register` message,
 * its validation, NATS subjects, and {@linkcode NatsRouteBus} (the NATS
 * transport for both sides). Used by the proxy (sender) and the router
 * (receiver).
 *
 * @example
 * ```ts
 * import { parseRegistryMessage, SUBJECTS } from "./mod.ts";
 * const m = parseRegistryMessage('{"host":"10.0.0.5","port":8080,"uris":["a.example.com"]}');
 * console.assert(m.port === 8080 && SUBJECTS.register === "router.register");
 * ```
 * @module
 */
export {
  parseRegistryMessage,
  parseRouterStartMessage,
  RegistryMessage,
  RegistryMessageError,
  routeKey,
  RouteUri,
  SUBJECTS,
} from "./_message.ts";
export type {
  IgnoredField,
  RouterStartMessage,
  RouteSink,
} from "./_message.ts";
export { NatsRouteBus } from "./_nats.ts";
export { redactUrl } from "../common/mod.ts";
export type {
  NatsRouteBusOptions,
  RouterStartListenerOptions,
} from "./_nats.ts";
export { RouteBusError } from "./errors.ts";

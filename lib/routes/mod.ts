/**
 * The route registration protocol: Cloud Foundry's `router.register` message,
 * its validation, and NATS subjects. Used by the proxy (sender) and the router
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
  RegistryMessage,
  RegistryMessageError,
  RouteUri,
  SUBJECTS,
} from "./_message.ts";
export type { RouterStartMessage } from "./_message.ts";

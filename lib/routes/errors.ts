/**
 * Errors of the route bus.
 * @module
 */
import { ApplianceError } from "../common/mod.ts";

/**
 * A route message could not be delivered: the bus is closed or NATS is
 * unreachable. Codes: `ERR_ROUTES_BUS_CLOSED`, `ERR_ROUTES_NATS_UNAVAILABLE`,
 * `ERR_ROUTES_PUBLISH_FAILED`.
 *
 * @example
 * ```ts
 * import { RouteBusError } from "./errors.ts";
 * const err = new RouteBusError("ERR_ROUTES_BUS_CLOSED", "Cannot publish route: the bus is closed");
 * console.assert(err.name === "RouteBusError");
 * ```
 */
export class RouteBusError extends ApplianceError {}

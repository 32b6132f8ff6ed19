/**
 * The router's route table, for the scale and NATS probes of `bench/router.ts`.
 * One place to change if `lib/router/mod.ts` starts exporting `Registry`.
 * @module
 */
export { Registry } from "../lib/router/_registry.ts";

/**
 * The router's route table, for the scale and NATS probes of `bench/router.ts`.
 * @module
 */
export { Registry } from "../lib/router/mod.ts";

/**
 * NATS apply-rate probe, run by `bench/router.ts`:
 * `deno run -A bench/router_nats_apply.ts NATS_URL N`. A router-side
 * `NatsRouteBus` feeds the router's `Registry`; prints `{"ready":true}` once
 * subscribed, then one JSON line when N endpoints are in the table (wall-clock
 * ms of the first and last message applied, RSS).
 * @module
 */
import { NatsRouteBus } from "../lib/routes/mod.ts";
import { createLogger } from "../lib/observe/mod.ts";
import { Registry } from "./router_registry.ts";

const url = Deno.args[0]!;
const n = Number(Deno.args[1] ?? "100000");
const registry = new Registry();
const now = () => performance.timeOrigin + performance.now();
let first = 0;
let invalid = 0;
const done = Promise.withResolvers<number>();
const bus = await NatsRouteBus.connect({
  servers: [url],
  logger: createLogger("bench", { level: "warn" }),
  onRegister: (m) => {
    if (first === 0) first = now();
    registry.register(m, Date.now());
    if (registry.endpointCount === n) done.resolve(now());
  },
  onInvalid: () => invalid++,
});
await bus.whenConnected();
if (!(await bus.greet(2000))) throw new Error("greet round-trip failed");
console.log(JSON.stringify({ ready: true }));
const last = await done.promise;
console.log(JSON.stringify({
  endpoints: registry.endpointCount,
  first_ms: first,
  last_ms: last,
  invalid,
  rss_mb: Math.round(Deno.memoryUsage().rss / 2 ** 20),
}));
await bus.close();

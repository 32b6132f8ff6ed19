/**
 * Route-table scale probe, run by `bench/router.ts` in a fresh process per size
 * (`deno run -A --v8-flags=--expose-gc bench/router_scale.ts N`). Prints one
 * JSON line: time to parse and register N endpoints (one route each, Cloud
 * Foundry route-emitter messages), resident memory after GC, and the cost of
 * one lookup (lowercasing a fresh Host string + table lookup) at that size,
 * over all routes and over a hot set of 1,000 routes.
 * @module
 */
import { parseRegistryMessage } from "../lib/routes/mod.ts";
import { registration, Registry } from "./router_registry.ts";

const n = Number(Deno.args[0] ?? "100000");
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

function memMb(): { rss: number; heap: number } {
  gc();
  gc();
  const m = Deno.memoryUsage();
  return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20 };
}

const baseline = memMb();
const registry = new Registry();
// Messages are made 1,000 at a time (only parse + register is timed), as they
// would arrive: 100k texts held at once would leave ~30 MB of this probe's
// own garbage resident and count it as the table's.
let registerMs = 0;
for (let start = 0; start < n; start += 1000) {
  const texts = Array.from(
    { length: Math.min(1000, n - start) },
    (_, j) => registration(start + j),
  );
  const t0 = performance.now();
  for (const t of texts) {
    registry.register(parseRegistryMessage(t), Date.now());
  }
  registerMs += performance.now() - t0;
}
const after = memMb();
if (registry.endpointCount !== n) {
  throw new Error(`expected ${n} endpoints, got ${registry.endpointCount}`);
}

// Lookups of random existing routes, Host header as it would arrive.
const LOOKUPS = 500_000;
const REPEAT = 7; // best of: the machine may be shared
const idx = new Uint32Array(LOOKUPS);
for (let i = 0; i < LOOKUPS; i++) idx[i] = Math.floor(Math.random() * n);
let hits = 0;
/** Best time of `REPEAT` passes (after a warm-up) looking up `at`'s routes. */
const timeLookups = (at: Uint32Array) => {
  const pass = () => {
    const s = performance.now();
    for (let i = 0; i < LOOKUPS; i++) {
      const host = `APP${at[i]}.BENCH.TEST`.toLowerCase();
      if (registry.lookup(host, "/") !== undefined) hits++;
    }
    return performance.now() - s;
  };
  pass();
  return best(pass);
};
const best = (f: () => number) =>
  Math.min(...Array.from({ length: REPEAT }, f));
const lookupMs = timeLookups(idx);
// The same lookups confined to 1,000 routes: the working set real traffic
// has when a few routes are busy. Flat here means the table's size itself
// costs nothing; the uniform run above also measures CPU cache misses.
const HOT = Math.min(1000, n);
const hotMs = timeLookups(
  idx.map((_, i) => Math.floor((i * 7919) % HOT * (n / HOT))),
);
// The Host-string part alone (same work minus the table lookup).
let sink = 0;
const strings = () => {
  const s = performance.now();
  for (let i = 0; i < LOOKUPS; i++) {
    sink += `APP${idx[i]}.BENCH.TEST`.toLowerCase().length;
  }
  return performance.now() - s;
};
strings();
const stringMs = best(strings);
if (sink === 0) throw new Error("unreachable");
// Reference floor: a bare Map<string, object> with the same keys.
const bare = new Map<string, { i: number }>();
for (let i = 0; i < n; i++) bare.set(`app${i}.bench.test`, { i });
const bareRun = () => {
  const s = performance.now();
  for (let i = 0; i < LOOKUPS; i++) {
    if (bare.get(`APP${idx[i]}.BENCH.TEST`.toLowerCase()) !== undefined) sink++;
  }
  return performance.now() - s;
};
bareRun();
const bareMs = best(bareRun);
if (hits !== 2 * LOOKUPS * (REPEAT + 1)) {
  throw new Error(`lookups missed: ${hits}`);
}

console.log(JSON.stringify({
  endpoints: n,
  register_ms: Math.round(registerMs),
  register_per_s: Math.round(n / (registerMs / 1000)),
  rss_mb: Math.round(after.rss),
  rss_delta_mb: Math.round((after.rss - baseline.rss) * 10) / 10,
  heap_delta_mb: Math.round((after.heap - baseline.heap) * 10) / 10,
  lookup_ns: Math.round((lookupMs * 1e6) / LOOKUPS),
  lookup_hot_ns: Math.round((hotMs * 1e6) / LOOKUPS),
  host_string_ns: Math.round((stringMs * 1e6) / LOOKUPS),
  bare_map_ns: Math.round((bareMs * 1e6) / LOOKUPS),
}));

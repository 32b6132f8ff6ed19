/**
 * The flags the router benchmarks share: `--quick`, `--runs=N`, `--duration=10s`,
 * `--cpu-cap=0.4`, `--trace-gc`, `--cpu-prof`. Each section reads the ones it
 * uses and ignores the rest, so `bench/router.ts` passes all of them on.
 * @module
 */

/** The router benchmarks' settings. */
export interface RouterBenchOptions {
  quick: boolean;
  /** wrk runs per row (best shown). @default {2, 1 with --quick} */
  runs: number;
  /** One wrk run, e.g. `"10s"` (`"3s"` with --quick; `--duration=5s`). */
  duration: string;
  /** The warm-up run before each measured one. */
  warmup: string;
  /** Registrations published in the NATS sections. */
  natsN: number;
  /** Count the router's V8 garbage collections during the big-table runs. */
  traceGc: boolean;
  /** Profile router #1 and print its top functions. */
  cpuProf: boolean;
  /** CPU quota of each router process in the scale-out section, in cores. */
  cpuCap: number;
}

/** Reads the shared flags from `args`. */
export function routerBenchOptions(args: string[]): RouterBenchOptions {
  const flag = (name: string) =>
    args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = args.includes("--quick");
  return {
    quick,
    runs: Number(flag("runs") ?? (quick ? 1 : 2)),
    duration: flag("duration") ?? (quick ? "3s" : "10s"),
    warmup: quick ? "1s" : "2s",
    natsN: quick ? 20_000 : 100_000,
    traceGc: args.includes("--trace-gc"),
    cpuProf: args.includes("--cpu-prof"),
    cpuCap: Number(flag("cpu-cap") ?? 0.4),
  };
}

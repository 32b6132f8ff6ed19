/**
 * Router benchmark, route-table scale (not a test):
 * `deno run -A bench/router_table.ts [--quick]`.
 *
 * The router's `Registry` in a fresh process per size
 * (`bench/router_scale.ts`): time and memory to parse and register 1k, 10k
 * and 100k endpoints (1k and 10k with --quick), and the cost of one lookup at
 * each size.
 *
 * Prints a markdown table and a SUMMARY line.
 * @module
 */
import { routerBenchOptions } from "./_lib/options.ts";
import { machine } from "./_lib/os.ts";
import { DENO, ROOT } from "./_lib/proc.ts";
import { fmt, Report, tableHead } from "./_lib/report.ts";

const report = new Report();
report.header.push(
  `Date: ${
    new Date().toISOString()
  }; machine: ${machine()}; Deno ${Deno.version.deno}.`,
);
await tableScale(report, routerBenchOptions(Deno.args).quick);
report.print();

async function tableScale(report: Report, quick: boolean): Promise<void> {
  const { results, summary } = report;
  const sizes = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000];
  const lookups = new Map<number, number>();
  const hot = new Map<number, number>();
  results.push(
    "### Route table scale (router `Registry`, one fresh process per size)",
    "",
    "Lookups take a fresh Host string, lowercase it and find the route: over",
    "all routes at random (each lookup likely a CPU cache miss as the table",
    "grows), and over 1,000 busy routes of the same table (the table's size",
    "alone).",
    "",
    ...tableHead([
      "Endpoints",
      "parse + register",
      "per second",
      "RSS after GC",
      "RSS growth",
      "JS heap growth",
      "lookup, all routes",
      "lookup, 1,000 busy routes",
      "of which Host string",
      "bare `Map` lookup, all routes",
    ]),
  );
  for (const n of sizes) {
    const out = await new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        "bench/router_scale.ts",
        String(n),
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      results.push(
        `| ${fmt(n)} | failed: ${
          new TextDecoder().decode(out.stderr).slice(-200)
        } |`,
      );
      continue;
    }
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    lookups.set(n, r.lookup_ns);
    hot.set(n, r.lookup_hot_ns);
    results.push(
      `| ${fmt(n)} | ${fmt(r.register_ms)} ms | ${fmt(r.register_per_s)} | ${
        fmt(r.rss_mb)
      } MB | ${fmt(r.rss_delta_mb, 1)} MB | ${fmt(r.heap_delta_mb, 1)} MB | ${
        fmt(r.lookup_ns)
      } ns | ${fmt(r.lookup_hot_ns)} ns | ${fmt(r.host_string_ns)} ns | ${
        fmt(r.bare_map_ns)
      } ns |`,
    );
  }
  results.push("");
  const series: Array<[string, Map<number, number>]> = [
    ["all routes", lookups],
    ["1,000 busy", hot],
  ];
  for (const [what, m] of series) {
    const first = m.get(sizes[0]!);
    const last = m.get(sizes.at(-1)!);
    if (!first || !last) continue;
    summary.push([
      "router",
      `route lookup (${what}) at ${fmt(sizes.at(-1)!)} vs ${
        fmt(sizes[0]!)
      } endpoints`,
      `${fmt(last)} ns vs ${fmt(first)} ns`,
      `${fmt(last / first, 2)}×`,
      "flat",
    ]);
  }
}

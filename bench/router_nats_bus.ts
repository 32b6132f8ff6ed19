/**
 * Router benchmark, NATS into the route table alone (not a test):
 * `deno run -A bench/router_nats_bus.ts [--quick]`.
 *
 * 100k (20k with --quick) distinct `router.register` messages published to a
 * real nats-server, timed until a `NatsRouteBus` + `Registry` process
 * (`bench/router_nats_apply.ts`, no HTTP) has applied them all.
 *
 * Prints a markdown table and a SUMMARY line. Needs nats-server.
 * @module
 */
import { publishAll, registrations, wallNow } from "./_lib/nats.ts";
import { DENO, until } from "./_lib/proc.ts";
import { fmt, tableHead } from "./_lib/report.ts";
import { runSection } from "./_lib/router.ts";
import type { RouterBench } from "./_lib/router.ts";

await runSection(natsProbe, { wrk: false });

async function natsProbe(bench: RouterBench): Promise<void> {
  const n = bench.options.natsN;
  const p = bench.procs.spawn("nats apply probe", DENO, [
    "run",
    "-A",
    "bench/router_nats_apply.ts",
    bench.nats.url,
    String(n),
  ]);
  await until("probe ready", () => p.lines.length > 0, 20_000, p);
  const msgs = registrations(n);
  const start = await publishAll(bench.nats.url, msgs);
  const published = wallNow();
  await until("probe result", () => p.lines.length > 1, 120_000, p);
  const r = JSON.parse(p.lines[1]!);
  await bench.procs.stop(p);
  const rate = fmt(n / ((r.last_ms - start) / 1000));
  bench.report.results.push(
    "### NATS → `NatsRouteBus` + `Registry` (separate process, no HTTP)",
    "",
    ...tableHead(["Measure", "Value"]),
    `| messages | ${fmt(n)} (invalid: ${r.invalid}) |`,
    `| publish time (one client) | ${fmt(published - start)} ms |`,
    `| first publish → last applied | ${fmt(r.last_ms - start)} ms |`,
    `| registrations/s applied | ${rate} |`,
    `| RSS of the probe after | ${fmt(r.rss_mb)} MB |`,
    "",
  );
  bench.report.summary.push([
    "router",
    "registrations/s applied from NATS (NatsRouteBus + Registry only)",
    rate,
    "",
    "≥ 50k/s",
  ]);
}

/**
 * Router benchmark, NATS into a running router (not a test):
 * `deno run -A bench/router_nats.ts [--quick] [--trace-gc] [--cpu-prof]`.
 *
 * 100k (20k with --quick) distinct `router.register` messages published to a
 * real nats-server, timed until they are all in a running `sigil router`'s
 * table (polled from its metrics), with the router's RSS, and keep-alive
 * req/s of the same process with its small table and then with the big one.
 * Once with default V8 settings, once with `--v8-flags=--memory-saver-mode`
 * (a fresh router), one table each.
 *
 * Prints two markdown tables and a SUMMARY line. Needs wrk and nats-server.
 * @module
 */
import { freePort } from "../tests/_helpers/ports.ts";
import { publishAll, registrations, wallNow } from "./_lib/nats.ts";
import { rssMb } from "./_lib/os.ts";
import { until } from "./_lib/proc.ts";
import type { Proc } from "./_lib/proc.ts";
import { summarizeProfile } from "./_lib/profile.ts";
import { fmt, tableHead } from "./_lib/report.ts";
import { metric, runSection } from "./_lib/router.ts";
import type { Proxied, RouterBench } from "./_lib/router.ts";

await runSection(async (bench) => {
  const proxied = await bench.proxied();
  await natsIntoRouter(bench, proxied, 1, [], "default V8 settings");
  // The same with V8's memory saver mode, which keeps the heap near its live
  // size (more GC work for less resident memory).
  await natsIntoRouter(
    bench,
    proxied,
    9,
    ["--memory-saver-mode"],
    "--v8-flags=--memory-saver-mode",
  );
}, { wrk: true });

/**
 * Router #`n` (with `v8Flags`): keep-alive req/s with its one route, the
 * NATS ingest, then keep-alive req/s again on the big table.
 */
async function natsIntoRouter(
  bench: RouterBench,
  proxied: Proxied,
  n: number,
  v8Flags: string[],
  label: string,
): Promise<void> {
  const { options: o, report } = bench;
  const routerPort = freePort(), apiPort = freePort();
  let router: Proc | undefined;
  try {
    // Router #1 listens with reuse_port, as in router_http.ts.
    router = await bench.startRouter(routerPort, apiPort, n, {
      reusePort: n === 1,
      v8Flags,
    });
    await bench.routeLands(
      `sigil router #${n}`,
      apiPort,
      router,
      proxied.register,
    );
    await ingest(bench, router, routerPort, apiPort, label);
  } catch (err) {
    report.failed(`NATS into sigil router (${label}): failed`, err);
  } finally {
    if (router) await bench.procs.stop(router);
  }
  if (o.cpuProf && n === 1) {
    await summarizeProfile(
      `${bench.tmp}/prof`,
      "NATS ingest, keep-alive load",
      report,
    );
  }
}

/** Keep-alive load, the NATS ingest, keep-alive load on the big table. */
async function ingest(
  bench: RouterBench,
  router: Proc,
  routerPort: number,
  apiPort: number,
  label: string,
): Promise<void> {
  const { options: o, report } = bench;
  const msgs = registrations(o.natsN);
  const before = await metric(apiPort, "endpoints");
  // Same process, back to back: req/s with the small table, then the big one.
  const gcCount = () => {
    const l = router.lines;
    return {
      scavenge: l.filter((x) => x.includes("Scavenge")).length,
      markCompact: l.filter((x) => x.includes("Mark-Compact")).length,
    };
  };
  const wrkGc = async () => {
    await bench.wrk(routerPort, o.warmup);
    const g0 = gcCount();
    const r = await bench.wrk(routerPort, o.duration);
    const g1 = gcCount();
    return {
      r,
      gc: `${g1.scavenge - g0.scavenge} scavenges, ${
        g1.markCompact - g0.markCompact
      } mark-compacts`,
    };
  };
  const small = await wrkGc();
  const rssBefore = rssMb(router.child.pid);
  const start = await publishAll(bench.nats.url, msgs);
  const published = wallNow();
  const target = before + o.natsN;
  let seen = before;
  await until(
    "router to apply NATS registrations",
    async () => (seen = await metric(apiPort, "endpoints")) >= target,
    120_000,
    router,
  );
  const done = wallNow();
  const rssAfter = rssMb(router.child.pid);
  const secs = (done - start) / 1000;
  const big = await wrkGc();
  const rssLoaded = rssMb(router.child.pid);
  report.results.push(
    `### NATS → sigil router (running process, ${label})`,
    "",
    ...tableHead(["Measure", "Value"]),
    `| messages published (distinct endpoints) | ${fmt(o.natsN)} |`,
    `| publish time (one client) | ${fmt(published - start)} ms |`,
    `| first publish → all in the router's table (metrics poll every 25 ms) | ${
      fmt(done - start)
    } ms |`,
    `| registrations/s applied | ${fmt(o.natsN / secs)} |`,
    `| router RSS before → after (${fmt(seen)} endpoints) | ${
      fmt(rssBefore)
    } → ${fmt(rssAfter)} MB |`,
    `| keep-alive req/s, same process: ${fmt(before)} endpoint(s) → ${
      fmt(seen)
    } | ${fmt(small.r.rps)} → ${fmt(big.r.rps)} (${
      fmt(big.r.rps / small.r.rps, 2)
    }×); p99 ${fmt(small.r.p99Ms, 2)} → ${fmt(big.r.p99Ms, 2)} ms |`,
    `| router RSS after that keep-alive run on the big table | ${
      fmt(rssLoaded)
    } MB |`,
  );
  if (o.traceGc) {
    report.results.push(
      `| router GCs per run: small → big table | ${small.gc} → ${big.gc} |`,
    );
  }
  report.results.push("");
  report.summary.push(
    [
      "router",
      `registrations/s applied from NATS (sigil router, ${label})`,
      fmt(o.natsN / secs),
      "",
      "≥ 50k/s",
    ],
    [
      "router",
      `router RSS with ${fmt(seen)} endpoints (before: ${
        fmt(rssBefore)
      } MB; ${label})`,
      `${fmt(rssAfter)} MB`,
      `+${fmt(rssAfter - rssBefore)} MB`,
      "< 200 MB",
    ],
    [
      "router",
      `router RSS with ${fmt(seen)} endpoints after keep-alive load (${label})`,
      `${fmt(rssLoaded)} MB`,
      "",
      "< 200 MB",
    ],
    [
      "router",
      `keep-alive req/s with ${fmt(seen)} endpoints (${label})`,
      fmt(big.r.rps),
      "",
      "",
    ],
  );
}

/**
 * Router benchmark, keep-alive HTTP (not a test):
 * `deno run -A bench/router_http.ts [--quick] [--runs=N] [--cpu-prof]`.
 *
 * HTTP keep-alive through `sigil router` (1 process, then 2 processes on one
 * port with `reuse_port`) vs nginx (`worker_processes 1`) doing the same
 * integrity check: `proxy_ssl_verify on`, `proxy_ssl_name <instance id>`,
 * client certificate (mTLS), upstream keepalive. Same backend for both: a
 * `sigil proxy` in mtls mode in front of a trivial Deno.serve app (or the
 * node:tls stand-in from `router_backend.ts` if the proxy cannot start; the
 * table says which). Load: `wrk -t1 -c50 --latency`. Interleaved with those
 * runs, requests the router answers itself (`404 unknown_route`), to show
 * what a second process adds when the router is the bottleneck.
 *
 * Prints two markdown tables and a SUMMARY line. Needs wrk and nginx.
 * @module
 */
import { freePort } from "../tests/_helpers/ports.ts";
import { startNginx } from "./_lib/nginx.ts";
import { cpuDuring } from "./_lib/os.ts";
import type { Proc } from "./_lib/proc.ts";
import { summarizeProfile } from "./_lib/profile.ts";
import { fmt, tableHead } from "./_lib/report.ts";
import {
  best,
  httpStatus,
  ROUTE_HOST,
  rpsWithOthers,
  runSection,
  UNKNOWN_HOST,
} from "./_lib/router.ts";
import type { RouterBench } from "./_lib/router.ts";
import type { WrkResult } from "./_lib/wrk.ts";

await runSection(keepAlive, { wrk: true });

async function keepAlive(bench: RouterBench): Promise<void> {
  const { options: o, report } = bench;
  const proxied = await bench.proxied();
  const nginxPort = freePort();
  const nginx = await startNginx(bench.procs, {
    dir: `${bench.tmp}/nginx`,
    port: nginxPort,
    backendPort: proxied.backend.port,
    creds: proxied.creds,
  });

  // sigil router #1 runs throughout (with reuse_port, which costs nothing to
  // a lone process); a second process joins the port for the 2-process rows
  // and leaves again, so every configuration is measured interleaved.
  const routerPort = freePort();
  const startOne = async (n: number) => {
    const api = freePort();
    const p = await bench.startRouter(routerPort, api, n, { reusePort: true });
    await bench.routeLands(`sigil router #${n}`, api, p, proxied.register);
    return p;
  };
  let router: Proc | undefined;
  let routerError = "";
  try {
    router = await startOne(1);
    const status = await httpStatus(routerPort, ROUTE_HOST);
    if (status !== 200) throw new Error(`sigil router answered ${status}`);
  } catch (err) {
    routerError = err instanceof Error ? err.message : String(err);
    if (router) await bench.procs.stop(router);
    router = undefined;
  }

  const rows: { name: string; runs: WrkResult[] }[] = [];
  const measure = async (
    name: string,
    port: number,
    front: Proc[],
    host = ROUTE_HOST,
  ) => {
    let row = rows.find((r) => r.name === name);
    if (!row) rows.push(row = { name, runs: [] });
    await bench.wrk(port, o.warmup, host);
    const [res, cpu] = await cpuDuring(
      {
        front: front.map((p) => p.child.pid),
        backend: proxied.backendPids,
      },
      () => bench.wrk(port, o.duration, host),
    );
    const secs = parseFloat(o.duration);
    cpu.wrk = Math.round((res.wrkTicks ?? 0) / secs);
    // Everything else on the machine (other users of these cores).
    cpu.other = Math.max(
      0,
      cpu.machine! * navigator.hardwareConcurrency - cpu.front! -
        cpu.backend! - cpu.wrk,
    );
    res.cpu = cpu;
    row.runs.push(res);
  };

  let twoOk = true;
  for (let r = 0; r < o.runs; r++) {
    await measure("nginx 1.22, 1 worker", nginxPort, [nginx]);
    if (!router) continue;
    await measure("sigil router, 1 process", routerPort, [router]);
    // Answered by the router itself (no backend): its own capacity.
    await measure(
      "404 unknown_route, 1 process",
      routerPort,
      [router],
      UNKNOWN_HOST,
    );
    if (!twoOk) continue;
    let second: Proc | undefined;
    try {
      second = await startOne(2);
      await measure(
        "sigil router, 2 processes (reuse_port)",
        routerPort,
        [router, second],
      );
      await measure(
        "404 unknown_route, 2 processes (reuse_port)",
        routerPort,
        [router, second],
        UNKNOWN_HOST,
      );
    } catch (err) {
      twoOk = false;
      report.failed("Two router processes on one port: could not run", err);
    }
    if (second) await bench.procs.stop(second);
  }
  printTables(bench, rows, routerError);
  if (router) {
    await bench.procs.stop(router);
    if (o.cpuProf) {
      await summarizeProfile(`${bench.tmp}/prof`, "HTTP load", report);
    }
  }
}

function printTables(
  bench: RouterBench,
  rows: { name: string; runs: WrkResult[] }[],
  routerError: string,
): void {
  const { results, summary } = bench.report;
  if (!rows.length) return;
  const base = best(rows[0]!.runs);
  results.push(
    "### Keep-alive HTTP through the router",
    "",
    ...tableHead([
      "Setup",
      "req/s",
      "vs nginx",
      "p99 latency",
      "p99 vs nginx",
      "req per CPU-second of the front process(es)",
      "vs nginx",
      "CPU % of a core: front / backend / wrk / other",
      "errors",
    ]),
  );
  const eff = (r: WrkResult) =>
    r.cpu && r.cpu.front! > 0 ? r.rps / (r.cpu.front! / 100) : NaN;
  const bestEff = (runs: WrkResult[]) => Math.max(...runs.map(eff));
  const baseEff = bestEff(rows[0]!.runs);
  const proxied = rows.filter((r) => !r.name.startsWith("404"));
  const local = rows.filter((r) => r.name.startsWith("404"));
  for (const row of proxied) {
    const b = best(row.runs);
    const cpu = b.cpu;
    const e = bestEff(row.runs);
    if (row !== rows[0]) {
      summary.push(
        [
          "router",
          `keep-alive req/s vs nginx: ${row.name}`,
          fmt(b.rps),
          `${fmt(b.rps / base.rps, 2)}×`,
          "≥ 0.35× per core",
        ],
        [
          "router",
          `req per front CPU-second vs nginx: ${row.name}`,
          fmt(e),
          `${fmt(e / baseEff, 2)}×`,
          "≥ 0.35×",
        ],
        [
          "router",
          `p99 latency vs nginx: ${row.name}`,
          `${fmt(b.p99Ms, 1)} ms`,
          `${fmt(b.p99Ms / base.p99Ms, 2)}×`,
          "",
        ],
      );
    }
    results.push(
      `| ${row.name} | ${rpsWithOthers(row.runs, fmt)} | ${
        fmt(b.rps / base.rps, 2)
      }× | ${fmt(b.p99Ms, 2)} ms | ${fmt(b.p99Ms / base.p99Ms, 2)}× | ${
        fmt(e)
      } | ${fmt(e / baseEff, 2)}× | ${
        cpu ? `${cpu.front} / ${cpu.backend} / ${cpu.wrk} / ${cpu.other}` : "–"
      } | ${b.errors || "0"} |`,
    );
  }
  const one = rows.find((r) => r.name === "sigil router, 1 process");
  const two = rows.find((r) => r.name.startsWith("sigil router, 2"));
  if (one && two) {
    summary.push([
      "router",
      "2 router processes on one port vs 1 (keep-alive req/s)",
      `${fmt(best(two.runs).rps)} vs ${fmt(best(one.runs).rps)}`,
      `${fmt(best(two.runs).rps / best(one.runs).rps, 2)}×`,
      "> 1× (adds throughput)",
    ]);
  }
  if (routerError) {
    results.push(`| sigil router | not run | | | | | | | ${routerError} |`);
  }
  results.push("");
  if (!local.length) return;
  results.push(
    "Requests the router answers itself (`404 unknown_route`, no backend), to show what a second process adds when the router is the bottleneck:",
    "",
    ...tableHead([
      "Setup",
      "req/s",
      "p99 latency",
      "CPU % of a core: routers / wrk / other",
    ]),
  );
  for (const row of local) {
    const b = best(row.runs);
    const cpu = b.cpu;
    results.push(
      `| ${row.name} | ${rpsWithOthers(row.runs, fmt)} | ${
        fmt(b.p99Ms, 2)
      } ms | ${cpu ? `${cpu.front} / ${cpu.wrk} / ${cpu.other}` : "–"} |`,
    );
  }
  results.push("");
  if (local.length === 2) {
    const r1 = best(local[0]!.runs).rps;
    const r2 = best(local[1]!.runs).rps;
    summary.push([
      "router",
      "2 router processes on one port vs 1 (404s answered by the router)",
      `${fmt(r2)} vs ${fmt(r1)}`,
      `${fmt(r2 / r1, 2)}×`,
      "> 1× (adds throughput)",
    ]);
  }
}

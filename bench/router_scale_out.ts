/**
 * Router benchmark, scale-out (not a test):
 * `deno run -A bench/router_scale_out.ts [--quick] [--runs=N] [--cpu-cap=0.4]`.
 *
 * 1 vs 2 router processes on one port (`reuse_port`), each in its own cgroup
 * v1 CPU quota (`--cpu-cap` cores, default 0.4) so that the router, not the
 * machine, is the bottleneck; 404s the router answers itself and keep-alive
 * requests to the same backend as `router_http.ts`. Needs root and cgroup
 * v1's cpu controller at /sys/fs/cgroup/cpu (else the table says
 * `skipped: <reason>`).
 *
 * Prints a markdown table and a SUMMARY line. Needs wrk.
 * @module
 */
import { freePort } from "../tests/_helpers/ports.ts";
import {
  CG_PERIOD_US,
  cgroupUnavailable,
  createCgroup,
} from "./_lib/cgroup.ts";
import type { Cgroup } from "./_lib/cgroup.ts";
import { cpuDuring, establishedConns } from "./_lib/os.ts";
import type { Proc } from "./_lib/proc.ts";
import { fmt, tableHead } from "./_lib/report.ts";
import {
  best,
  metric,
  ROUTE_HOST,
  rpsWithOthers,
  runSection,
  UNKNOWN_HOST,
} from "./_lib/router.ts";
import type { RouterBench } from "./_lib/router.ts";
import type { WrkResult } from "./_lib/wrk.ts";

await runSection(scaleOut, { wrk: true });

interface CappedRun extends WrkResult {
  /** CPU % of a core of each router process. */
  routerCpu: number[];
  /** Share of the requests each router process counted. */
  share: number[];
  /** Established client connections per router process, mid-run. */
  conns: number[];
  /** Throttled CFS periods per router process, in %. */
  throttled: number[];
}

interface Capped {
  p: Proc;
  api: number;
  cg: Cgroup;
}

type Kind = "404 unknown_route" | "keep-alive via backend";
type Row = { name: string; host: string; n: number; runs: CappedRun[] };

/**
 * 1 vs 2 router processes on one port (`reuse_port`), each in its own cgroup
 * with a `cpuCap`-core quota, so that the routers are the bottleneck and
 * wrk, the backend proxy and the app have CPU to spare.
 */
async function scaleOut(bench: RouterBench): Promise<void> {
  const { options: o, report } = bench;
  const cap = o.cpuCap;
  const title =
    `### Scale-out: 1 vs 2 router processes on one port (reuse_port), each capped at ${cap} core (cgroup v1 cpu.cfs_quota_us ${
      Math.round(cap * CG_PERIOD_US)
    } / cpu.cfs_period_us ${CG_PERIOD_US})`;
  const why = cgroupUnavailable(cap);
  if (why) {
    console.error(`scale-out skipped: ${why}`);
    report.results.push(title, "", `skipped: ${why}`, "");
    report.summary.push([
      "router",
      `2 router processes vs 1, each capped at ${cap} core`,
      `skipped: ${why}`,
      "",
      "2 processes > 1 process",
    ]);
    return;
  }
  const proxied = await bench.proxied();
  const port = freePort();
  const cgroups = [1, 2].map((i) =>
    createCgroup(`sigil-bench-${Deno.pid}-router${i}`, cap)
  );
  const running: Capped[] = [];
  const startCapped = async (i: number) => {
    const cg = cgroups[i - 1]!;
    const api = freePort();
    const p = await bench.startRouter(port, api, 10 + i, {
      reusePort: true,
      onSpawn: (p) => cg.add(p.child.pid),
    });
    const r = { p, api, cg };
    running.push(r);
    await bench.routeLands(
      `capped sigil router #${i}`,
      api,
      p,
      proxied.register,
    );
    return r;
  };
  const stopCapped = async (r: { p: Proc }) => {
    await bench.procs.stop(r.p);
    running.splice(running.findIndex((x) => x.p === r.p), 1);
  };

  const rows: Row[] = [];
  const measure = async (set: Capped[], kind: Kind, host: string) => {
    const name = `${kind}, ${set.length} process${
      set.length > 1 ? "es (reuse_port)" : ""
    }`;
    let row = rows.find((r) => r.name === name);
    if (!row) rows.push(row = { name, host, n: set.length, runs: [] });
    await bench.wrk(port, o.warmup, host);
    const req0 = await Promise.all(
      set.map((r) => metric(r.api, "sigil_router_requests_total")),
    );
    const st0 = set.map((r) => r.cg.stat());
    const groups: Record<string, number[]> = { backend: proxied.backendPids };
    set.forEach((r, i) => (groups[`r${i}`] = [r.p.child.pid]));
    let conns: number[] = [];
    const secs = parseFloat(o.duration);
    const [res, cpu] = await cpuDuring(groups, async () => {
      const w = bench.wrk(port, o.duration, host);
      await new Promise((r) => setTimeout(r, (secs * 1000) / 2));
      conns = set.map((r) => establishedConns(r.p.child.pid, port));
      return await w;
    });
    const st1 = set.map((r) => r.cg.stat());
    const req1 = await Promise.all(
      set.map((r) => metric(r.api, "sigil_router_requests_total")),
    );
    const counted = req1.map((v, i) => v - req0[i]!);
    const total = counted.reduce((a, b) => a + b, 0);
    cpu.wrk = Math.round((res.wrkTicks ?? 0) / secs);
    cpu.routers = set.reduce((a, _, i) => a + cpu[`r${i}`]!, 0);
    // Everything else on the machine (other users of these cores).
    cpu.other = Math.max(
      0,
      cpu.machine! * navigator.hardwareConcurrency - cpu.routers -
        cpu.backend! - cpu.wrk,
    );
    res.cpu = cpu;
    row.runs.push({
      ...res,
      routerCpu: set.map((_, i) => cpu[`r${i}`]!),
      share: counted.map((v) => v / total),
      conns,
      throttled: st1.map((s, i) =>
        (s.throttled - st0[i]!.throttled) /
        Math.max(1, s.periods - st0[i]!.periods)
      ),
    });
  };

  try {
    for (let r = 0; r < o.runs; r++) {
      const first = running[0] ?? await startCapped(1);
      await measure([first], "404 unknown_route", UNKNOWN_HOST);
      await measure([first], "keep-alive via backend", ROUTE_HOST);
      const second = await startCapped(2);
      await measure([first, second], "404 unknown_route", UNKNOWN_HOST);
      await measure([first, second], "keep-alive via backend", ROUTE_HOST);
      await stopCapped(second);
    }
  } catch (err) {
    report.failed("Scale-out under a CPU cap: failed", err);
  } finally {
    for (const r of [...running].reverse()) await stopCapped(r);
    for (const cg of cgroups) {
      await Deno.remove(cg.dir).catch((err) =>
        report.notes.push(`- Could not remove cgroup ${cg.dir}: ${err}`)
      );
    }
  }
  if (rows.length) printTable(bench, title, rows);
}

function printTable(bench: RouterBench, title: string, rows: Row[]): void {
  const { results, summary } = bench.report;
  const pct = (v: number) => `${fmt(v * 100)}%`;
  results.push(
    title,
    "",
    `Each router process in its own cgroup; wrk, the backend \`sigil proxy\` and the app are not capped. Request share from each router's \`sigil_router_requests_total\`; connections = established client connections per process, sampled mid-run.`,
    "",
    ...tableHead([
      "Setup",
      "req/s",
      "vs 1 process",
      "p99 latency",
      "CPU % of a core per router process (throttled periods)",
      "req per router CPU-second",
      "request share",
      "connections",
      "CPU % of a core: backend / wrk / other",
      "errors",
    ]),
  );
  for (const kind of ["404 unknown_route", "keep-alive via backend"]) {
    const one = rows.find((r) => r.name.startsWith(kind) && r.n === 1);
    const two = rows.find((r) => r.name.startsWith(kind) && r.n === 2);
    for (const row of [one, two]) {
      if (!row) continue;
      const b = best(row.runs);
      const base = one ? best(one.runs).rps : NaN;
      results.push(
        `| ${row.name} | ${rpsWithOthers(row.runs, fmt)} | ${
          fmt(b.rps / base, 2)
        }× | ${fmt(b.p99Ms, 2)} ms | ${
          b.routerCpu.map((c, i) => `${c} (${pct(b.throttled[i]!)})`).join(
            " + ",
          )
        } | ${fmt(b.rps / (b.cpu!.routers! / 100))} | ${
          b.share.map(pct).join(" / ")
        } | ${b.conns.join(" / ")} | ${
          b.cpu ? `${b.cpu.backend} / ${b.cpu.wrk} / ${b.cpu.other}` : "–"
        } | ${b.errors || "0"} |`,
      );
    }
    if (one && two) {
      const r1 = best(one.runs).rps;
      const r2 = best(two.runs).rps;
      summary.push([
        "router",
        `2 router processes vs 1, each capped at ${bench.options.cpuCap} core (${kind})`,
        `${fmt(r2)} vs ${fmt(r1)}`,
        `${fmt(r2 / r1, 2)}×`,
        "2 processes > 1 process",
      ]);
    }
  }
  results.push("");
}

/**
 * Router benchmark, `sigil router` vs Cloud Foundry's real gorouter (not a
 * test): `deno run -A bench/router_gorouter.ts [--quick] [--runs=N]
 * [--duration=10s] [--part=http,nats] [--front=http|https] [--load=0,1,2]
 * [--cpu-prof]` (`--load` picks rows: 0 keep-alive 1 KB, 1 keep-alive 200 KB,
 * 2 new connection per request).
 *
 * Same backend for every row: a strict-mTLS `sigil proxy` in front of a
 * Deno.serve app answering `GET /bytes/N` with N bytes. Both routers reach it
 * with the same client certificate and check its certificate names the
 * registered instance (route integrity); both write an access log file.
 * gorouter (`../shared/peers/gorouter.gz`, routing-release April 2023) runs
 * twice: with CF's defaults (`disable_keep_alives: true`,
 * `max_idle_conns_per_host: 2`: a new backend TLS connection per request),
 * and tuned for backend keep-alive (`false` / 100).
 *
 * - `http`: wrk -t1 -c50 --latency through each router, over its plain and
 *   its HTTPS front: keep-alive with 1 KB and 200 KB bodies, and a new client
 *   connection per request (`Connection: close`, 1 KB). req/s, p99, and
 *   requests per CPU-second of the router process (user + system, all
 *   threads), with ratios to both gorouters; then HTTPS vs plain per router.
 * - `nats`: a fresh `sigil router` and gorouter (tuned) on the same
 *   nats-server; 100k (20k with --quick) registrations published once, then
 *   one for a last route to the real backend. Time-to-routable: first
 *   publish → that last route answers 200 (NATS keeps one publisher's order,
 *   and both routers apply messages in order), polled every 25 ms on each
 *   router at the same time; CPU each router spent until then; RSS before,
 *   after, and after keep-alive load on the big table.
 *
 * `--cpu-prof` profiles the `sigil router` of each part and prints its top
 * functions. Needs wrk and nats-server.
 * @module
 */
import { freePort } from "../tests/_helpers/ports.ts";
import { ensureRoute, startBenchGorouter } from "./_lib/gorouter.ts";
import type { BenchGorouter } from "./_lib/gorouter.ts";
import { publishAll, registrations, wallNow } from "./_lib/nats.ts";
import { cpuDuring, cpuTicks, HZ, peakRssMb, rssMb } from "./_lib/os.ts";
import type { Proc } from "./_lib/proc.ts";
import { summarizeProfile } from "./_lib/profile.ts";
import { fmt, tableHead } from "./_lib/report.ts";
import {
  best,
  httpStatus,
  INSTANCE_ID,
  metric,
  ROUTE_HOST,
  rpsWithOthers,
  runSection,
} from "./_lib/router.ts";
import type { Proxied, RouterBench } from "./_lib/router.ts";
import { runWrk } from "./_lib/wrk.ts";
import type { WrkResult } from "./_lib/wrk.ts";

/** `--front=http` or `https` measures one front only. */
const FRONTS = (["http", "https"] as const).filter((f) =>
  (Deno.args.find((a) => a.startsWith("--front="))?.slice(8) ?? f) === f
);
/** `--load=0,2`: only these rows of {@linkcode LOADS}. */
const loadIdx = (Deno.args.find((a) => a.startsWith("--load="))?.slice(7) ??
  "0,1,2").split(",").map(Number);
const parts = Deno.args.find((a) => a.startsWith("--part="))?.slice(7)
  .split(",") ?? ["http", "nats"];

/** The route registered last in the `nats` part. */
const LAST_HOST = "last.bench.test";

interface Load {
  name: string;
  path: string;
  headers: string[];
}

const LOADS: Load[] = [
  { name: "keep-alive, 1 KB", path: "/bytes/1024", headers: [] },
  { name: "keep-alive, 200 KB", path: "/bytes/204800", headers: [] },
  {
    name: "new connection per request, 1 KB",
    path: "/bytes/1024",
    headers: ["Connection: close"],
  },
];

await runSection(async (bench) => {
  const proxied = await bench.proxied();
  bench.report.header.push(
    "gorouter: routing-release April 2023 (`../shared/peers/gorouter.gz`), GOMAXPROCS = all CPUs; " +
      `load average at the start: ${loadAvg()}.`,
  );
  if (parts.includes("http")) await httpPart(bench, proxied);
  if (parts.includes("nats")) await natsPart(bench, proxied);
}, { wrk: true });

function loadAvg(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3)
    .join(" ");
}

/** One router under test. */
interface Target {
  name: string;
  plain: number;
  https: number;
  pid: number;
  /** Before each load run (gorouter: the route is back). */
  ready: () => Promise<void>;
}

async function httpPart(bench: RouterBench, proxied: Proxied): Promise<void> {
  const { options: o, report, tmp } = bench;
  const front = await proxied.creds.pki.issueClient({
    commonName: ROUTE_HOST,
    dnsNames: [ROUTE_HOST],
  });
  await Deno.writeTextFile(`${tmp}/front.crt`, front.certPem);
  await Deno.writeTextFile(`${tmp}/front.key`, front.keyPem, { mode: 0o600 });
  const gos: BenchGorouter[] = [];
  let router: Proc | undefined;
  // A heartbeat, as the proxy sends (every second here): what brings back a
  // route gorouter pruned (see ensureRoute).
  const beat = setInterval(() => void proxied.register().catch(() => {}), 1000);
  try {
    const plain = freePort(), https = freePort(), api = freePort();
    router = await bench.startRouter(plain, api, 1, {
      reusePort: false,
      https: {
        port: https,
        certFile: `${tmp}/front.crt`,
        keyFile: `${tmp}/front.key`,
      },
    });
    await bench.routeLands("sigil router", api, router, proxied.register);
    const targets: Target[] = [{
      name: "sigil router",
      plain,
      https,
      pid: router.child.pid,
      ready: () => Promise.resolve(),
    }];
    for (const tuned of [true, false]) {
      const https = freePort();
      const g = await startBenchGorouter(
        bench,
        proxied,
        tuned ? "gorouter-tuned" : "gorouter-default",
        { tuned, https: { port: https, cert: front } },
      );
      gos.push(g);
      targets.push({
        name: tuned
          ? "gorouter, backend keep-alive (disable_keep_alives: false, 100 idle per host)"
          : "gorouter, CF defaults (disable_keep_alives: true)",
        plain: g.port,
        https,
        pid: g.pid,
        ready: () => ensureRoute(g, proxied),
      });
    }
    for (const t of targets) {
      const s = await httpStatus(t.plain, ROUTE_HOST, "/bytes/1024");
      if (s !== 200) throw new Error(`${t.name} answered ${s}`);
    }
    const rows = new Map<string, WrkResult[]>();
    for (let r = 0; r < o.runs; r++) {
      for (const scheme of FRONTS) {
        for (const load of LOADS.filter((_, i) => loadIdx.includes(i))) {
          for (const t of targets) {
            const port = scheme === "http" ? t.plain : t.https;
            const url = `${scheme}://127.0.0.1:${port}${load.path}`;
            const run = (duration: string) =>
              runWrk(url, {
                duration,
                latency: true,
                headers: [`Host: ${ROUTE_HOST}`, ...load.headers],
                sampleCpu: true,
              });
            await t.ready();
            await run(o.warmup);
            await t.ready();
            const [res, cpu] = await cpuDuring(
              { front: [t.pid], backend: proxied.backendPids },
              () => run(o.duration),
            );
            cpu.wrk = Math.round((res.wrkTicks ?? 0) / parseFloat(o.duration));
            cpu.other = Math.max(
              0,
              cpu.machine! * navigator.hardwareConcurrency - cpu.front! -
                cpu.backend! - cpu.wrk,
            );
            res.cpu = cpu;
            res.rps = okRate(res);
            const key = `${scheme}|${load.name}|${t.name}`;
            rows.set(key, [...rows.get(key) ?? [], res]);
          }
        }
      }
    }
    httpTables(bench, targets, rows);
    for (const t of targets) {
      report.notes.push(
        `- ${t.name}: RSS after the HTTP runs ${fmt(rssMb(t.pid))} MB.`,
      );
    }
    for (const [i, g] of gos.entries()) {
      // Its error log lines by message, most frequent first.
      const byMessage = new Map<string, number>();
      for (const l of g.go.output().split("\n")) {
        if (!/"log_level":[2-9]/.test(l)) continue;
        const m = l.match(/"message":"([^"]+)"/)?.[1] ?? "?";
        byMessage.set(m, (byMessage.get(m) ?? 0) + 1);
      }
      const top = [...byMessage].sort((a, b) => b[1] - a[1]).slice(0, 3);
      report.notes.push(
        `- ${targets[i + 1]!.name}: error log lines: ${
          top.map(([m, n]) => `${n}× \`${m}\``).join(", ") || "none"
        }.`,
      );
    }
  } finally {
    clearInterval(beat);
    for (const g of gos) await g.go[Symbol.asyncDispose]();
    if (router) await bench.procs.stop(router);
  }
  if (o.cpuProf) {
    await summarizeProfile(`${tmp}/prof`, "sigil router, HTTP part", report);
  }
}

/** req/s of 2xx/3xx answers alone (wrk's req/s counts errors too). */
function okRate(r: WrkResult): number {
  const total = Number(r.text.match(/(\d+) requests in/)?.[1] ?? NaN);
  if (!r.errorCount || !(total > 0)) return r.rps;
  return r.rps * Math.max(0, 1 - r.errorCount / total);
}

/** Requests per CPU-second of the router process. */
function perCpu(r: WrkResult): number {
  return r.cpu && r.cpu.front! > 0 ? r.rps / (r.cpu.front! / 100) : NaN;
}

function httpTables(
  bench: RouterBench,
  targets: Target[],
  rows: Map<string, WrkResult[]>,
): void {
  const { results, summary } = bench.report;
  const [sigil, tuned, dflt] = targets as [Target, Target, Target];
  const get = (scheme: string, load: Load, t: Target) =>
    rows.get(`${scheme}|${load.name}|${t.name}`) ?? [];
  const bestCpu = (runs: WrkResult[]) => Math.max(...runs.map(perCpu));
  results.push(
    "### sigil router vs gorouter (same strict-mTLS sigil proxy backend)",
    "",
    "req/s counts 2xx answers only (errors, if any, in the last column). Ratios: this row ÷ gorouter with backend keep-alive / ÷ gorouter with CF defaults, same front and load.",
    "",
    ...tableHead([
      "front, load",
      "router",
      "req/s",
      "vs gorouter keep-alive / defaults",
      "p99",
      "req per router CPU-second",
      "vs gorouter keep-alive / defaults",
      "CPU % of a core: router / backend / wrk / other",
      "errors",
    ]),
  );
  for (const scheme of ["http", "https"]) {
    for (const load of LOADS) {
      if (!get(scheme, load, tuned).length || !get(scheme, load, dflt).length) {
        continue;
      }
      const bt = best(get(scheme, load, tuned));
      const bd = best(get(scheme, load, dflt));
      const ct = bestCpu(get(scheme, load, tuned));
      const cd = bestCpu(get(scheme, load, dflt));
      for (const t of targets) {
        const runs = get(scheme, load, t);
        if (!runs.length) continue;
        const b = best(runs);
        const c = bestCpu(runs);
        const cpu = b.cpu!;
        results.push(
          `| ${
            scheme === "http" ? "plain" : "HTTPS"
          }, ${load.name} | ${t.name} | ${rpsWithOthers(runs, fmt)} | ${
            fmt(b.rps / bt.rps, 2)
          }× / ${fmt(b.rps / bd.rps, 2)}× | ${fmt(b.p99Ms, 2)} ms | ${
            fmt(c)
          } | ${fmt(c / ct, 2)}× / ${
            fmt(c / cd, 2)
          }× | ${`${cpu.front} / ${cpu.backend} / ${cpu.wrk} / ${cpu.other}`} | ${
            b.errors || "0"
          } |`,
        );
        if (t === sigil) {
          const front = scheme === "http" ? "plain" : "HTTPS";
          summary.push(
            [
              "router",
              `vs gorouter (keep-alive tuned), ${front}, ${load.name}: req/s`,
              fmt(b.rps),
              `${fmt(b.rps / bt.rps, 2)}×`,
              "",
            ],
            [
              "router",
              `vs gorouter (keep-alive tuned), ${front}, ${load.name}: req per CPU-s`,
              fmt(c),
              `${fmt(c / ct, 2)}×`,
              scheme === "http" ? "≥ 1.5×" : "≥ 1.0×",
            ],
          );
        }
      }
    }
  }
  results.push(
    "",
    "HTTPS front ÷ plain front of the same router (best runs):",
    "",
    ...tableHead(["router", ...LOADS.map((l) => `${l.name}: req/s`)]),
  );
  for (const t of targets) {
    results.push(
      `| ${t.name} | ${
        LOADS.map((l) => {
          const p = get("http", l, t), s = get("https", l, t);
          if (!p.length || !s.length) return "–";
          return `${fmt(best(s).rps / best(p).rps, 2)}×`;
        }).join(" | ")
      } |`,
    );
  }
  results.push("");
  const big = LOADS[1]!;
  const p = get("http", big, sigil), s = get("https", big, sigil);
  if (p.length && s.length) {
    summary.push([
      "router",
      "HTTPS vs plain front, 200 KB bodies (sigil router)",
      `${fmt(best(s).rps)} vs ${fmt(best(p).rps)}`,
      `${fmt(best(s).rps / best(p).rps, 2)}×`,
      "≥ 0.8×",
    ]);
  }
}

/** One router of the `nats` part and what was measured on it. */
interface Ingest {
  name: string;
  port: number;
  pid: number;
  ready: () => Promise<void>;
  /** Endpoints in its table. */
  count: () => Promise<number>;
  /** Its last error log lines. */
  log: () => string;
  rssBefore: number;
  ticks0: number;
  routableMs: number;
  cpuS: number;
  rssAfter: number;
  endpoints: number;
  load?: WrkResult;
  rssLoaded: number;
  peak: number;
}

async function natsPart(bench: RouterBench, proxied: Proxied): Promise<void> {
  const { options: o, report, tmp } = bench;
  let router: Proc | undefined;
  const gos: BenchGorouter[] = [];
  const lastRegistration = JSON.stringify({
    host: "127.0.0.1",
    tls_port: proxied.backend.port,
    uris: [LAST_HOST],
    app: "11111111-2222-4333-8444-555555555555",
    private_instance_id: INSTANCE_ID,
    private_instance_index: "0",
    server_cert_domain_san: INSTANCE_ID,
  });
  const msgs = [
    ...registrations(o.natsN),
    new TextEncoder().encode(lastRegistration),
  ];
  try {
    const port = freePort(), api = freePort();
    router = await bench.startRouter(port, api, 2, {
      reusePort: false,
      keepStderr: /"event":"nats-/,
      ...(o.cpuProf ? { cpuProfDir: `${tmp}/prof-nats` } : {}),
    });
    await bench.routeLands("sigil router", api, router, proxied.register);
    const sigilProc = router;
    const sides: Ingest[] = [{
      name: "sigil router (log_level warn)",
      port,
      pid: router.child.pid,
      ready: () => Promise.resolve(),
      count: () => metric(api, "endpoints"),
      log: () => sigilProc.kept.slice(-3).join(" / ").slice(0, 600),
    }].map(fresh);
    for (const level of ["info", "error"] as const) {
      const g = await startBenchGorouter(
        bench,
        proxied,
        `gorouter-nats-${level}`,
        { tuned: true, logLevel: level },
      );
      gos.push(g);
      sides.push(fresh({
        name: `gorouter, logging.level ${level}${
          level === "info" ? " (CF's default)" : ""
        }`,
        port: g.port,
        pid: g.pid,
        ready: () => ensureRoute(g, proxied),
        log: () =>
          g.go.output().split("\n").filter((l) => /"log_level":[2-9]/.test(l))
            .slice(-2).join(" / ").slice(0, 400),
        count: async () =>
          Object.values(await g.go.routes()).reduce((n, e) => n + e.length, 0),
      }));
    }
    // All warmed up the same way: one keep-alive run on their one route.
    for (const s of sides) {
      await s.ready();
      await bench.wrk(s.port, o.warmup);
      s.rssBefore = rssMb(s.pid);
    }
    for (const s of sides) s.ticks0 = cpuTicks(s.pid);
    const start = await publishAll(bench.nats.url, msgs);
    const published = wallNow();
    const deadline = Date.now() + 120_000;
    await Promise.all(sides.map(async (s) => {
      for (;;) {
        const status = await httpStatus(s.port, LAST_HOST).catch(() => 0);
        if (status === 200) break;
        if (Date.now() > deadline) {
          // Not fatal: the others are still measured, and this says why.
          report.notes.push(
            `- ${s.name}: \`${LAST_HOST}\` not routable 120 s after the first publish, with ${
              fmt(await s.count())
            } of ${fmt(msgs.length + 1)} endpoints; its NATS log lines: ${
              s.log() || "none"
            }`,
          );
          s.cpuS = (cpuTicks(s.pid) - s.ticks0) / HZ;
          s.rssAfter = rssMb(s.pid);
          return;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      s.routableMs = wallNow() - start;
      s.cpuS = (cpuTicks(s.pid) - s.ticks0) / HZ;
      s.rssAfter = rssMb(s.pid);
    }));
    for (const s of sides) {
      await s.ready();
      await bench.wrk(s.port, o.warmup);
      await s.ready();
      s.load = await bench.wrk(s.port, o.duration);
      s.load.rps = okRate(s.load);
      s.rssLoaded = rssMb(s.pid);
      s.peak = peakRssMb(s.pid);
    }
    // Counted last: gorouter's /routes answer for the big table is large
    // and would grow its heap before the RSS readings.
    for (const s of sides) s.endpoints = await s.count();
    natsTable(bench, sides, published - start);
    report.notes.push(
      `- gorouter at logging.level info printed ${
        fmt(gos[0]!.go.output().split("\n").length)
      } log lines by the end of the NATS part (\`route-registered\` and \`endpoint-registered\` for each new route).`,
    );
  } catch (err) {
    report.failed("NATS into sigil router and gorouter: failed", err);
  } finally {
    for (const g of gos) await g.go[Symbol.asyncDispose]();
    if (router) await bench.procs.stop(router);
  }
  if (o.cpuProf) {
    await summarizeProfile(
      `${tmp}/prof-nats`,
      "sigil router, NATS ingest and keep-alive on the big table",
      report,
    );
  }
}

/** An {@linkcode Ingest} with nothing measured yet. */
function fresh(
  s: Pick<Ingest, "name" | "port" | "pid" | "ready" | "count" | "log">,
): Ingest {
  return {
    ...s,
    rssBefore: NaN,
    ticks0: 0,
    routableMs: NaN,
    cpuS: NaN,
    rssAfter: NaN,
    endpoints: NaN,
    rssLoaded: NaN,
    peak: NaN,
  };
}

function natsTable(
  bench: RouterBench,
  sides: Ingest[],
  publishMs: number,
): void {
  const { options: o, report } = bench;
  const [s, ...gs] = sides as [Ingest, ...Ingest[]];
  const row = (
    what: string,
    f: (x: Ingest) => number,
    unit: string,
    digits = 0,
  ) =>
    `| ${what} | ${
      sides.map((x) => `${fmt(f(x), digits)}${unit}`).join(" | ")
    } | ${gs.map((g) => `${fmt(f(s) / f(g), 2)}×`).join(" / ")} |`;
  report.results.push(
    `### ${
      fmt(o.natsN)
    } registrations over NATS into sigil router and gorouter at once`,
    "",
    `Published once by one client in ${
      fmt(publishMs)
    } ms, then one for \`${LAST_HOST}\` (the real backend); all routers subscribed to the same nats-server and ingesting at the same time. Both gorouters keep backend connections alive.`,
    "",
    ...tableHead([
      "Measure",
      ...sides.map((x) => x.name),
      "sigil ÷ gorouter (info / error)",
    ]),
    row(
      "RSS before (1 endpoint, after a keep-alive warm-up)",
      (x) => x.rssBefore,
      " MB",
    ),
    row(
      `time-to-routable: first publish → \`${LAST_HOST}\` answers 200 (polled every 25 ms)`,
      (x) => x.routableMs,
      " ms",
    ),
    row("router CPU-seconds until then", (x) => x.cpuS, " s", 1),
    row("RSS when routable", (x) => x.rssAfter, " MB"),
    row(
      `keep-alive req/s at ${fmt(o.natsN)} endpoints (wrk -c50, ${o.duration})`,
      (x) => x.load?.rps ?? NaN,
      "",
    ),
    row("p99 of that run", (x) => x.load?.p99Ms ?? NaN, " ms"),
    row("RSS after that keep-alive run", (x) => x.rssLoaded, " MB"),
    row("peak RSS of the process (VmHWM)", (x) => x.peak, " MB"),
    row("endpoints in the table at the end", (x) => x.endpoints, ""),
    "",
  );
  for (const g of gs) {
    report.summary.push(
      [
        "router",
        `time-to-routable after ${
          fmt(o.natsN)
        } NATS registrations vs ${g.name}`,
        `${fmt(s.routableMs)} vs ${fmt(g.routableMs)} ms`,
        `${fmt(s.routableMs / g.routableMs, 2)}×`,
        "≤ 1.0×",
      ],
      [
        "router",
        `RSS at ${fmt(o.natsN)} endpoints after keep-alive load vs ${g.name}`,
        `${fmt(s.rssLoaded)} vs ${fmt(g.rssLoaded)} MB`,
        `${fmt(s.rssLoaded / g.rssLoaded, 2)}×`,
        "≤ 1.0×",
      ],
    );
  }
}

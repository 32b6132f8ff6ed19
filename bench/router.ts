/**
 * Router benchmark (not a test): `deno run -A bench/router.ts [--quick]
 * [--only=http,scale-out,scale,nats] [--runs=N] [--cpu-cap=0.4]`.
 *
 * 1. HTTP keep-alive through `sigil router` (1 process, then 2 processes on one
 *    port with `reuse_port`) vs nginx (`worker_processes 1`) doing the same
 *    integrity check: `proxy_ssl_verify on`, `proxy_ssl_name <instance id>`,
 *    client certificate (mTLS), upstream keepalive. Same backend for both: a
 *    `sigil proxy` in mtls mode in front of a trivial Deno.serve app (or the
 *    node:tls stand-in from `router_backend.ts` if the proxy cannot start; the
 *    table says which). Load: `wrk -t1 -c50 --latency`.
 * 1b. Scale-out (`scale-out`): 1 vs 2 router processes on one port
 *    (`reuse_port`), each in its own cgroup v1 CPU quota (`--cpu-cap` cores,
 *    default 0.4) so that the router, not the machine, is the bottleneck; 404s
 *    the router answers itself and keep-alive requests to the same backend.
 *    Needs root and cgroup v1's cpu controller at /sys/fs/cgroup/cpu (else the
 *    section prints `skipped: <reason>`).
 * 2. Route-table scale (router's `Registry`, fresh process per size): time and
 *    memory for 1k/10k/100k endpoints, lookup cost at each size.
 * 3. Registrations/s from NATS: 100k `router.register` messages published to a
 *    real nats-server, timed until they are in a table (a `NatsRouteBus` +
 *    `Registry` process, and the running `sigil router` via its metrics), then
 *    keep-alive req/s again with 100k endpoints in the router's table.
 *
 * Prints a markdown table. Needs wrk, nginx and nats-server (Debian packages).
 * @module
 */
import { connect as natsConnect } from "@nats-io/transport-node";
import { NatsRouteBus } from "../lib/routes/mod.ts";
import { createLogger } from "../lib/observe/mod.ts";
import { startNatsServer } from "../tests/_helpers/nats.ts";
import { freePort } from "../tests/_helpers/ports.ts";
import { createTestPki } from "../tests/_helpers/pki.ts";
import { registration } from "./router_registry.ts";

const args = new Set(Deno.args);
const QUICK = args.has("--quick");
/** Count the router's V8 garbage collections during the big-table runs. */
const TRACE_GC = args.has("--trace-gc");
/** Profile router #1 (the 1-process runs) and print its top functions. */
const CPU_PROF = args.has("--cpu-prof");
const only = Deno.args.find((a) => a.startsWith("--only="))?.slice(7).split(
  ",",
) ?? ["http", "scale-out", "scale", "nats"];
const RUNS = Number(
  Deno.args.find((a) => a.startsWith("--runs="))?.slice(7) ?? (QUICK ? 1 : 2),
);
/** CPU quota of each router process in the scale-out section, in cores. */
const CPU_CAP = Number(
  Deno.args.find((a) => a.startsWith("--cpu-cap="))?.slice(10) ?? 0.4,
);
/** cgroup v1 cpu controller, and the CFS period of the quota. */
const CG_ROOT = "/sys/fs/cgroup/cpu";
const CG_PERIOD_US = 100_000;
const DURATION = QUICK ? "3s" : "10s";
const WARMUP = QUICK ? "1s" : "2s";
const NATS_N = QUICK ? 20_000 : 100_000;
const ROUTE_HOST = "app.bench.test";
const UNKNOWN_HOST = "nowhere.bench.test";
const INSTANCE_ID = "bench-instance-0001";
const ROOT = new URL("..", import.meta.url).pathname;
const DENO = Deno.execPath();
const quietLog = createLogger("bench", { level: "error" });

// ---------------------------------------------------------------- processes

interface Proc {
  name: string;
  child: Deno.ChildProcess;
  lines: string[];
  exited: boolean;
  stderrTail: () => string;
}
const procs: Proc[] = [];

function spawn(
  name: string,
  cmd: string,
  argv: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Proc {
  const child = new Deno.Command(cmd, {
    args: argv,
    cwd: opts.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const p: Proc = {
    name,
    child,
    lines: [],
    exited: false,
    stderrTail: () => "",
  };
  const err: string[] = [];
  p.stderrTail = () => {
    // Keep the error line(s), short enough for a table cell.
    const clean = err.map((l) => l.trim()).filter(Boolean);
    const errs = clean.filter((l) => /error/i.test(l));
    return (errs.length ? errs.slice(-2) : clean.slice(-3)).join(" / ")
      .slice(0, 300);
  };
  void child.status.then(() => (p.exited = true));
  void readLines(child.stdout, (l) => p.lines.push(l));
  void readLines(child.stderr, (l) => {
    err.push(l);
    if (err.length > 200) err.shift();
  });
  procs.push(p);
  return p;
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (l: string) => void,
): Promise<void> {
  let buf = "";
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  } catch {
    // process gone
  }
  if (buf) onLine(buf);
}

async function stop(p: Proc): Promise<void> {
  if (!p.exited) {
    try {
      p.child.kill("SIGTERM");
    } catch {
      // gone
    }
    const t = setTimeout(() => {
      try {
        p.child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, 5000);
    await p.child.status;
    clearTimeout(t);
  }
  const i = procs.indexOf(p);
  if (i >= 0) procs.splice(i, 1);
}

async function until(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  proc?: Proc,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (proc?.exited) {
      throw new Error(`${proc.name} exited: ${proc.stderrTail()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${what}${proc ? `: ${proc.stderrTail()}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function accepts(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/** One HTTP/1.1 GET over a fresh TCP connection; returns the status code. */
async function httpStatus(port: number, host: string, path = "/") {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await c.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(4096);
    const n = await c.read(buf);
    const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    return Number(head.split(" ")[1] ?? 0);
  } finally {
    c.close();
  }
}

async function httpBody(port: number, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return await res.text();
}

function rssMb(pid: number): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = s.match(/VmRSS:\s+(\d+) kB/);
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
}

/** utime + stime of a process and its descendants, in clock ticks. */
function cpuTicks(pid: number): number {
  let total = 0;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += Number(f[11]) + Number(f[12]);
    for (const tid of Deno.readDirSync(`/proc/${pid}/task`)) {
      const kids = Deno.readTextFileSync(
        `/proc/${pid}/task/${tid.name}/children`,
      ).trim();
      if (kids) {
        for (const k of kids.split(" ")) total += cpuTicks(Number(k));
      }
    }
  } catch {
    // gone
  }
  return total;
}

/** Busy and total jiffies of the whole machine. */
function systemTicks(): { busy: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** CPU use (in % of one core) of process groups while `fn` runs. */
async function cpuDuring<T>(
  groups: Record<string, number[]>,
  fn: () => Promise<T>,
): Promise<[T, Record<string, number>]> {
  const hz = 100;
  const snap = () =>
    Object.fromEntries(
      Object.entries(groups).map((
        [k, pids],
      ) => [k, pids.reduce((a, p) => a + cpuTicks(p), 0)]),
    );
  const s0 = systemTicks();
  const a = snap();
  const t0 = performance.now();
  const r = await fn();
  const secs = (performance.now() - t0) / 1000;
  const b = snap();
  const s1 = systemTicks();
  const out: Record<string, number> = {};
  for (const k of Object.keys(groups)) {
    out[k] = Math.round(((b[k]! - a[k]!) / hz / secs) * 100);
  }
  out.machine = Math.round(
    ((s1.busy - s0.busy) / (s1.total - s0.total)) * 100,
  );
  return [r, out];
}

// --------------------------------------------------------------------- wrk

interface WrkResult {
  rps: number;
  p99Ms: number;
  errors: string;
  /** wrk's CPU time in clock ticks. */
  wrkTicks?: number;
  cpu?: Record<string, number>;
}

function toMs(v: string): number {
  const m = v.match(/^([\d.]+)(us|ms|s)$/);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

async function wrk(
  port: number,
  duration: string,
  host = ROUTE_HOST,
): Promise<WrkResult> {
  const child = new Deno.Command("wrk", {
    args: [
      "-t1",
      "-c50",
      `-d${duration}`,
      "--latency",
      "-H",
      `Host: ${host}`,
      `http://127.0.0.1:${port}/`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // wrk's own CPU time: sampled until it exits (the last sample is < 200 ms old).
  let wrkTicks = 0;
  let done = false;
  const outP = child.output().finally(() => (done = true));
  while (!done) {
    wrkTicks = Math.max(wrkTicks, cpuTicks(child.pid));
    await Promise.race([outP, new Promise((r) => setTimeout(r, 200))]);
  }
  const out = await outP;
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? NaN);
  const p99 = text.match(/^\s+99%\s+(\S+)/m)?.[1] ?? "";
  const errs = [
    text.match(/Socket errors:.*$/m)?.[0],
    text.match(/Non-2xx or 3xx responses:.*$/m)?.[0],
  ].filter(Boolean).join("; ");
  return { rps, p99Ms: toMs(p99), errors: errs, wrkTicks };
}

// -------------------------------------------------------------------- setup

const results: string[] = [];
/** Rows for `bench/run.ts`: [component, measure, value, ratio, target]. */
const summary: string[][] = [];
const notes: string[] = [];
const tmp = await Deno.makeTempDir({ prefix: "sigil-bench-router-" });
const nats = await startNatsServer();

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

async function cpuInfo(): Promise<string> {
  const cpus = navigator.hardwareConcurrency;
  const model = (await Deno.readTextFile("/proc/cpuinfo")).match(
    /model name\s*:\s*(.*)/,
  )?.[1] ?? "?";
  return `${cpus} vCPU (${model.trim()})`;
}

try {
  const header = [
    `Date: ${
      new Date().toISOString()
    }; machine: ${await cpuInfo()}; Deno ${Deno.version.deno}.`,
    `wrk -t1 -c50 -d${DURATION} --latency (after a ${WARMUP} warm-up), ${RUNS} run(s) each, best run shown with the others in brackets.`,
  ];
  if (
    only.includes("http") || only.includes("nats") ||
    only.includes("scale-out")
  ) {
    await httpAndNats(header);
  }
  if (only.includes("scale")) await scale();
  if (only.includes("nats")) await natsProbe();
  console.log(["", ...header, "", ...results, "", ...notes].join("\n"));
  console.log(`SUMMARY ${JSON.stringify(summary)}`);
} finally {
  for (const p of [...procs].reverse()) await stop(p);
  await nats.stop();
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}

// ------------------------------------------------------- 1. HTTP + 3. NATS

async function httpAndNats(header: string[]): Promise<void> {
  // PKI: one instance certificate (SAN = instance id) and a router client cert.
  const pki = await createTestPki();
  const instDir = `${tmp}/instance`;
  await pki.writeInstance(instDir, {
    instanceId: INSTANCE_ID,
    app: "11111111-2222-4333-8444-555555555555",
    space: "11111111-2222-4333-8444-666666666666",
    org: "11111111-2222-4333-8444-777777777777",
    ips: ["127.0.0.1"],
  });
  const client = await pki.issueClient({
    commonName: "router",
    dnsNames: ["router.bench.test"],
  });
  await Deno.writeTextFile(`${tmp}/ca.pem`, pki.rootPem);
  await Deno.writeTextFile(`${instDir}/ca.pem`, pki.rootPem);
  await Deno.writeTextFile(`${tmp}/router.crt`, client.certPem);
  await Deno.writeTextFile(`${tmp}/router.key`, client.keyPem, { mode: 0o600 });

  // The app.
  const appPort = freePort();
  const app = spawn("app", DENO, [
    "run",
    "-A",
    "bench/router_backend.ts",
    "app",
    String(appPort),
  ]);
  await until("app", () => accepts(appPort), 15_000, app);

  // The backend: sigil proxy in mtls mode (or the stand-in).
  const backendPort = freePort();
  const backend = await startBackend(backendPort, appPort, instDir);
  header.push(
    `Backend: ${backend.label} in front of a Deno.serve app (same for every row).`,
  );

  // Register the route over NATS, as a proxy would.
  const sink = await NatsRouteBus.connect({
    servers: [nats.url],
    logger: quietLog,
  });
  const registration = {
    host: "127.0.0.1",
    tls_port: backendPort,
    uris: [ROUTE_HOST],
    app: "11111111-2222-4333-8444-555555555555",
    private_instance_id: INSTANCE_ID,
    private_instance_index: "0",
    server_cert_domain_san: INSTANCE_ID,
  };

  // nginx.
  const nginxPort = freePort();
  const nginx = await startNginx(nginxPort, backendPort);

  // sigil router #1 runs throughout (with reuse_port, which costs nothing to
  // a lone process); a second process joins the port for the 2-process rows
  // and leaves again, so every configuration is measured interleaved.
  const routerPort = freePort();
  let router: Proc | undefined;
  let routerApi = 0;
  let routerError = "";
  // Re-sends the registration until it lands, like a proxy's heartbeat (a
  // router may not have subscribed yet when its API starts answering).
  const routeLands = (what: string, api: number, p: Proc) =>
    until(
      `route in ${what}`,
      async () => {
        if ((await metric(api, "endpoints")) >= 1) return true;
        await sink.register(registration);
        await new Promise((r) => setTimeout(r, 100));
        return false;
      },
      20_000,
      p,
    );
  const startOne = async (n: number) => {
    const api = freePort();
    const p = await startRouter(routerPort, api, n, true);
    await routeLands(`sigil router #${n}`, api, p);
    return { p, api };
  };
  try {
    const r = await startOne(1);
    router = r.p;
    routerApi = r.api;
    const status = await httpStatus(routerPort, ROUTE_HOST);
    if (status !== 200) throw new Error(`sigil router answered ${status}`);
  } catch (err) {
    routerError = err instanceof Error ? err.message : String(err);
    if (router) await stop(router);
    router = undefined;
  }

  const rows: { name: string; runs: WrkResult[] }[] = [];
  const backendPids = [app.child.pid, backend.proc.child.pid];
  const measure = async (
    name: string,
    port: number,
    front: Proc[],
    host = ROUTE_HOST,
  ) => {
    let row = rows.find((r) => r.name === name);
    if (!row) rows.push(row = { name, runs: [] });
    await wrk(port, WARMUP, host);
    const [res, cpu] = await cpuDuring(
      { front: front.map((p) => p.child.pid), backend: backendPids },
      () => wrk(port, DURATION, host),
    );
    const secs = parseFloat(DURATION);
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

  if (only.includes("http")) {
    let twoOk = true;
    for (let r = 0; r < RUNS; r++) {
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
        second = (await startOne(2)).p;
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
        notes.push(
          `- Two router processes on one port: could not run (${
            err instanceof Error ? err.message.split("\n")[0] : err
          }).`,
        );
      }
      if (second) await stop(second);
    }
  }

  if (only.includes("http") && rows.length) {
    const base = best(rows[0]!.runs);
    results.push(
      "### Keep-alive HTTP through the router",
      "",
      "| Setup | req/s | vs nginx | p99 latency | p99 vs nginx | req per CPU-second of the front process(es) | vs nginx | CPU % of a core: front / backend / wrk / other | errors |",
      "|---|---|---|---|---|---|---|---|---|",
    );
    const eff = (r: WrkResult) =>
      r.cpu && r.cpu.front! > 0 ? r.rps / (r.cpu.front! / 100) : NaN;
    const bestEff = (runs: WrkResult[]) => Math.max(...runs.map(eff));
    const baseEff = bestEff(rows[0]!.runs);
    const proxied = rows.filter((r) => !r.name.startsWith("404"));
    const local = rows.filter((r) => r.name.startsWith("404"));
    for (const row of proxied) {
      const b = best(row.runs);
      const others = row.runs.filter((x) => x !== b).map((x) => fmt(x.rps));
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
        `| ${row.name} | ${fmt(b.rps)}${
          others.length ? ` (${others.join(", ")})` : ""
        } | ${fmt(b.rps / base.rps, 2)}× | ${fmt(b.p99Ms, 2)} ms | ${
          fmt(b.p99Ms / base.p99Ms, 2)
        }× | ${fmt(e)} | ${fmt(e / baseEff, 2)}× | ${
          b.cpu
            ? `${b.cpu.front} / ${b.cpu.backend} / ${b.cpu.wrk} / ${b.cpu.other}`
            : "–"
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
    if (local.length) {
      results.push(
        "Requests the router answers itself (`404 unknown_route`, no backend), to show what a second process adds when the router is the bottleneck:",
        "",
        "| Setup | req/s | p99 latency | CPU % of a core: routers / wrk / other |",
        "|---|---|---|---|",
      );
      for (const row of local) {
        const b = best(row.runs);
        const others = row.runs.filter((x) => x !== b).map((x) => fmt(x.rps));
        results.push(
          `| ${row.name} | ${fmt(b.rps)}${
            others.length ? ` (${others.join(", ")})` : ""
          } | ${fmt(b.p99Ms, 2)} ms | ${
            b.cpu ? `${b.cpu.front} / ${b.cpu.wrk} / ${b.cpu.other}` : "–"
          } |`,
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
  }

  // 1b. 1 vs 2 router processes, each under a CPU quota.
  if (only.includes("scale-out")) {
    await scaleOut(backendPids, () => sink.register(registration));
  }

  // 3b. NATS → the running router, then req/s with a big table.
  if (only.includes("nats") && router) {
    await natsIntoRouter(routerPort, routerApi, router, "default V8 settings");
    // The same with V8's memory saver mode, which keeps the heap near its
    // live size (more GC work for less resident memory).
    await stop(router);
    router = undefined;
    const savePort = freePort(), saveApi = freePort();
    const saver = await startRouter(
      savePort,
      saveApi,
      9,
      false,
      undefined,
      ["--memory-saver-mode"],
    );
    await routeLands("the memory-saver router", saveApi, saver);
    await natsIntoRouter(
      savePort,
      saveApi,
      saver,
      "--v8-flags=--memory-saver-mode",
    );
    await stop(saver);
  } else if (only.includes("nats")) {
    notes.push(
      `- NATS into sigil router: not run (${
        routerError || "router did not start"
      }).`,
    );
  }

  await sink.close();
  if (router) {
    await stop(router);
    if (CPU_PROF) await summarizeProfile(`${tmp}/prof`);
  }
  await stop(nginx);
  void app;
}

function best(runs: WrkResult[]): WrkResult {
  return runs.reduce((a, b) => (b.rps > a.rps ? b : a));
}

async function startBackend(
  port: number,
  appPort: number,
  instDir: string,
): Promise<{ label: string; proc: Proc }> {
  const adminPort = freePort();
  const cfg = `${tmp}/proxy.yaml`;
  await Deno.writeTextFile(
    cfg,
    [
      "proxy:",
      `  admin_listen: 127.0.0.1:${adminPort}`,
      "  instances:",
      `    - id: ${INSTANCE_ID}`,
      `      credentials_dir: ${instDir}`,
      "      mode: mtls",
      `      trusted_client_cas: [${tmp}/ca.pem]`,
      "      listeners:",
      `        - listen: 127.0.0.1:${port}`,
      `          app: 127.0.0.1:${appPort}`,
      "",
    ].join("\n"),
  );
  const p = spawn("sigil proxy", DENO, [
    "run",
    "-A",
    "main.ts",
    "proxy",
    "--config",
    cfg,
  ]);
  try {
    await until("sigil proxy", () => accepts(port), 20_000, p);
    return { label: "`sigil proxy` (mode mtls)", proc: p };
  } catch (err) {
    await stop(p);
    notes.push(
      `- sigil proxy could not start (${
        err instanceof Error ? err.message.split("\n")[0] : err
      }); the node:tls mTLS stand-in (bench/router_backend.ts tls-pipe) was used.`,
    );
  }
  const s = spawn("tls stand-in", DENO, [
    "run",
    "-A",
    "bench/router_backend.ts",
    "tls-pipe",
    String(port),
    String(appPort),
    instDir,
  ]);
  await until("tls stand-in", () => accepts(port), 15_000, s);
  return {
    label:
      "node:tls mTLS stand-in (`bench/router_backend.ts tls-pipe`, not `sigil proxy`)",
    proc: s,
  };
}

async function startNginx(port: number, backendPort: number): Promise<Proc> {
  const dir = `${tmp}/nginx`;
  await Deno.mkdir(dir, { recursive: true });
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass https://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 3;
      proxy_ssl_trusted_certificate ${tmp}/ca.pem;
      proxy_ssl_name ${INSTANCE_ID};
      proxy_ssl_server_name on;
      proxy_ssl_certificate ${tmp}/router.crt;
      proxy_ssl_certificate_key ${tmp}/router.key;
      proxy_ssl_session_reuse on;
    }
  }
}
`;
  await Deno.writeTextFile(`${dir}/nginx.conf`, conf);
  const p = spawn("nginx", "nginx", [
    "-p",
    dir,
    "-e",
    `${dir}/error.log`,
    "-c",
    `${dir}/nginx.conf`,
  ]);
  await until("nginx", () => accepts(port), 10_000, p);
  const status = await httpStatus(port, ROUTE_HOST);
  if (status !== 200) {
    const log = await Deno.readTextFile(`${dir}/error.log`).catch(() => "");
    throw new Error(`nginx answered ${status}: ${log.slice(-500)}`);
  }
  return p;
}

async function startRouter(
  port: number,
  apiPort: number,
  n: number,
  reusePort: boolean,
  onSpawn?: (p: Proc) => void,
  v8Flags: string[] = [],
): Promise<Proc> {
  // The API is on (metrics); writes need a token we never mint here.
  const { publicKey } = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", publicKey));
  const pem = `-----BEGIN PUBLIC KEY-----\n${
    btoa(String.fromCharCode(...spki)).match(/.{1,64}/g)!.join("\n")
  }\n-----END PUBLIC KEY-----\n`;
  await Deno.writeTextFile(`${tmp}/api-key-${n}.pem`, pem);
  const cfg = `${tmp}/router-${n}.yaml`;
  await Deno.writeTextFile(
    cfg,
    [
      "router:",
      `  listen: 127.0.0.1:${port}`,
      `  reuse_port: ${reusePort}`,
      `  id: ${n - 1}-bench-router`,
      "  log_level: warn",
      "  api:",
      `    listen: 127.0.0.1:${apiPort}`,
      `    public_key_file: ${tmp}/api-key-${n}.pem`,
      "  nats:",
      `    servers: [${nats.url}]`,
      "  backends:",
      "    mode: mtls",
      `    ca: ${tmp}/ca.pem`,
      `    cert: ${tmp}/router.crt`,
      `    key: ${tmp}/router.key`,
      "  access_log:",
      `    file: ${tmp}/router-access-${n}.log`,
      "",
    ].join("\n"),
  );
  // Deno 2.9 still gates SO_REUSEPORT behind --unstable-net.
  const p = spawn(`sigil router #${n}`, DENO, [
    "run",
    "-A",
    ...(reusePort ? ["--unstable-net"] : []),
    ...(TRACE_GC || v8Flags.length
      ? [`--v8-flags=${[...v8Flags, ...(TRACE_GC ? ["--trace-gc"] : [])]}`]
      : []),
    ...(CPU_PROF && n === 1
      ? ["--cpu-prof", `--cpu-prof-dir=${tmp}/prof`]
      : []),
    "main.ts",
    "router",
    "--config",
    cfg,
  ]);
  onSpawn?.(p);
  await until(`sigil router #${n}`, () => accepts(apiPort), 20_000, p);
  return p;
}

async function metric(apiPort: number, name: string): Promise<number> {
  try {
    const text = await httpBody(apiPort, "/metrics");
    const re = new RegExp(`^\\S*${name}(?:\\{\\})? (\\S+)$`, "m");
    return Number(text.match(re)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** Distinct route-emitter style messages (one route and endpoint each). */
function registrations(n: number): Uint8Array[] {
  const enc = new TextEncoder();
  return Array.from({ length: n }, (_, i) => enc.encode(registration(i)));
}

/** Publishes messages as fast as the client allows; returns wall-clock start. */
async function publishAll(msgs: Uint8Array[]): Promise<number> {
  const nc = await natsConnect({ servers: [nats.url] });
  try {
    const start = performance.timeOrigin + performance.now();
    for (let i = 0; i < msgs.length; i++) {
      nc.publish("router.register", msgs[i]!);
      if (i % 2000 === 1999) await nc.flush();
    }
    await nc.flush();
    return start;
  } finally {
    await nc.close();
  }
}

async function natsIntoRouter(
  routerPort: number,
  apiPort: number,
  router: Proc,
  label: string,
): Promise<void> {
  const msgs = registrations(NATS_N);
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
    await wrk(routerPort, WARMUP);
    const g0 = gcCount();
    const r = await wrk(routerPort, DURATION);
    const g1 = gcCount();
    return {
      r,
      gc: `${g1.scavenge - g0.scavenge} scavenges, ${
        g1.markCompact - g0.markCompact
      } mark-compacts`,
    };
  };
  const small = only.includes("http") ? await wrkGc() : undefined;
  const rssBefore = rssMb(router.child.pid);
  const start = await publishAll(msgs);
  const published = performance.timeOrigin + performance.now();
  const target = before + NATS_N;
  let seen = before;
  await until(
    "router to apply NATS registrations",
    async () => (seen = await metric(apiPort, "endpoints")) >= target,
    120_000,
    router,
  );
  const done = performance.timeOrigin + performance.now();
  const rssAfter = rssMb(router.child.pid);
  const secs = (done - start) / 1000;
  results.push(
    `### NATS → sigil router (running process, ${label})`,
    "",
    "| Measure | Value |",
    "|---|---|",
    `| messages published (distinct endpoints) | ${fmt(NATS_N)} |`,
    `| publish time (one client) | ${fmt(published - start)} ms |`,
    `| first publish → all in the router's table (metrics poll every 25 ms) | ${
      fmt(done - start)
    } ms |`,
    `| registrations/s applied | ${fmt(NATS_N / secs)} |`,
    `| router RSS before → after (${fmt(seen)} endpoints) | ${
      fmt(rssBefore)
    } → ${fmt(rssAfter)} MB |`,
  );
  summary.push(
    [
      "router",
      `registrations/s applied from NATS (sigil router, ${label})`,
      fmt(NATS_N / secs),
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
  );
  if (small) {
    const big = await wrkGc();
    const rssLoaded = rssMb(router.child.pid);
    results.push(
      `| keep-alive req/s, same process: ${fmt(before)} endpoint(s) → ${
        fmt(seen)
      } | ${fmt(small.r.rps)} → ${fmt(big.r.rps)} (${
        fmt(big.r.rps / small.r.rps, 2)
      }×); p99 ${fmt(small.r.p99Ms, 2)} → ${fmt(big.r.p99Ms, 2)} ms |`,
      `| router RSS after that keep-alive run on the big table | ${
        fmt(rssLoaded)
      } MB |`,
    );
    summary.push(
      [
        "router",
        `router RSS with ${
          fmt(seen)
        } endpoints after keep-alive load (${label})`,
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
    if (TRACE_GC) {
      results.push(
        `| router GCs per run: small → big table | ${small.gc} → ${big.gc} |`,
      );
    }
  }
  results.push("");
}

// --------------------------------------- 1b. scale-out under a CPU quota

/** A cgroup v1 `cpu` group with a CFS quota. */
interface Cgroup {
  dir: string;
  /** Moves a process (all its threads) into the group. */
  add(pid: number): void;
  /** CFS periods so far and how many of them were throttled. */
  stat(): { periods: number; throttled: number };
}

/** Why cgroup v1 CPU quotas cannot be used here, or "" when they can. */
function cgroupUnavailable(): string {
  try {
    Deno.statSync(`${CG_ROOT}/cpu.cfs_quota_us`);
  } catch {
    return `no cgroup v1 cpu controller at ${CG_ROOT} (cpu.cfs_quota_us missing)`;
  }
  const probe = `${CG_ROOT}/sigil-bench-${Deno.pid}-probe`;
  try {
    Deno.mkdirSync(probe);
    Deno.removeSync(probe);
  } catch (err) {
    return `cannot create a cgroup under ${CG_ROOT} (${
      err instanceof Error ? err.name : err
    }; needs root, uid ${Deno.uid()})`;
  }
  if (!(CPU_CAP > 0 && CPU_CAP < navigator.hardwareConcurrency)) {
    return `--cpu-cap=${CPU_CAP} is not between 0 and ${navigator.hardwareConcurrency} cores`;
  }
  return "";
}

function createCgroup(name: string, cores: number): Cgroup {
  const dir = `${CG_ROOT}/${name}`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/cpu.cfs_period_us`, String(CG_PERIOD_US));
  Deno.writeTextFileSync(
    `${dir}/cpu.cfs_quota_us`,
    String(Math.round(cores * CG_PERIOD_US)),
  );
  return {
    dir,
    add: (pid) => Deno.writeTextFileSync(`${dir}/cgroup.procs`, String(pid)),
    stat: () => {
      const t = Deno.readTextFileSync(`${dir}/cpu.stat`);
      const get = (k: string) =>
        Number(t.match(new RegExp(`^${k} (\\d+)$`, "m"))?.[1] ?? NaN);
      return { periods: get("nr_periods"), throttled: get("nr_throttled") };
    },
  };
}

/** Established TCP connections on local `port` held by process `pid`. */
function establishedConns(pid: number, port: number): number {
  try {
    const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    const inodes = new Set<string>();
    for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n")) {
      const f = line.trim().split(/\s+/);
      // local_address rem_address st ... inode
      if (f[1]?.endsWith(hexPort) && f[3] === "01") inodes.add(f[9]!);
    }
    let n = 0;
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const m = Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`).match(
          /^socket:\[(\d+)\]$/,
        );
        if (m && inodes.has(m[1]!)) n++;
      } catch {
        // fd closed meanwhile
      }
    }
    return n;
  } catch {
    return NaN;
  }
}

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

/**
 * 1 vs 2 router processes on one port (`reuse_port`), each in its own cgroup
 * with a `CPU_CAP`-core quota, so that the routers are the bottleneck and
 * wrk, the backend proxy and the app have CPU to spare.
 */
async function scaleOut(
  backendPids: number[],
  register: () => Promise<void>,
): Promise<void> {
  const title =
    `### Scale-out: 1 vs 2 router processes on one port (reuse_port), each capped at ${CPU_CAP} core (cgroup v1 cpu.cfs_quota_us ${
      Math.round(CPU_CAP * CG_PERIOD_US)
    } / cpu.cfs_period_us ${CG_PERIOD_US})`;
  const why = cgroupUnavailable();
  if (why) {
    console.error(`scale-out skipped: ${why}`);
    results.push(title, "", `skipped: ${why}`, "");
    summary.push([
      "router",
      `2 router processes vs 1, each capped at ${CPU_CAP} core`,
      `skipped: ${why}`,
      "",
      "2 processes > 1 process",
    ]);
    return;
  }
  const port = freePort();
  const cgroups = [1, 2].map((i) =>
    createCgroup(`sigil-bench-${Deno.pid}-router${i}`, CPU_CAP)
  );
  const running: { p: Proc; api: number; cg: Cgroup }[] = [];
  const startCapped = async (i: number) => {
    const cg = cgroups[i - 1]!;
    const api = freePort();
    const p = await startRouter(
      port,
      api,
      10 + i,
      true,
      (p) => cg.add(p.child.pid),
    );
    const r = { p, api, cg };
    running.push(r);
    await until(
      `route in capped sigil router #${i}`,
      async () => {
        if ((await metric(api, "endpoints")) >= 1) return true;
        await register();
        await new Promise((r) => setTimeout(r, 100));
        return false;
      },
      20_000,
      p,
    );
    return r;
  };
  const stopCapped = async (r: { p: Proc }) => {
    await stop(r.p);
    running.splice(running.findIndex((x) => x.p === r.p), 1);
  };

  const rows: { name: string; host: string; n: number; runs: CappedRun[] }[] =
    [];
  const measure = async (
    set: { p: Proc; api: number; cg: Cgroup }[],
    kind: "404 unknown_route" | "keep-alive via backend",
    host: string,
  ) => {
    const name = `${kind}, ${set.length} process${
      set.length > 1 ? "es (reuse_port)" : ""
    }`;
    let row = rows.find((r) => r.name === name);
    if (!row) rows.push(row = { name, host, n: set.length, runs: [] });
    await wrk(port, WARMUP, host);
    const req0 = await Promise.all(
      set.map((r) => metric(r.api, "sigil_router_requests_total")),
    );
    const st0 = set.map((r) => r.cg.stat());
    const groups: Record<string, number[]> = { backend: backendPids };
    set.forEach((r, i) => (groups[`r${i}`] = [r.p.child.pid]));
    let conns: number[] = [];
    const secs = parseFloat(DURATION);
    const [res, cpu] = await cpuDuring(groups, async () => {
      const w = wrk(port, DURATION, host);
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
    for (let r = 0; r < RUNS; r++) {
      const first = running[0] ?? await startCapped(1);
      await measure([first], "404 unknown_route", UNKNOWN_HOST);
      await measure([first], "keep-alive via backend", ROUTE_HOST);
      const second = await startCapped(2);
      await measure([first, second], "404 unknown_route", UNKNOWN_HOST);
      await measure([first, second], "keep-alive via backend", ROUTE_HOST);
      await stopCapped(second);
    }
  } catch (err) {
    notes.push(
      `- Scale-out under a CPU cap: failed (${
        err instanceof Error ? err.message.split("\n")[0] : err
      }).`,
    );
  } finally {
    for (const r of [...running].reverse()) await stopCapped(r);
    for (const cg of cgroups) {
      await Deno.remove(cg.dir).catch((err) =>
        notes.push(`- Could not remove cgroup ${cg.dir}: ${err}`)
      );
    }
  }
  if (!rows.length) return;

  const pct = (v: number) => `${fmt(v * 100)}%`;
  results.push(
    title,
    "",
    `Each router process in its own cgroup; wrk, the backend \`sigil proxy\` and the app are not capped. Request share from each router's \`sigil_router_requests_total\`; connections = established client connections per process, sampled mid-run.`,
    "",
    "| Setup | req/s | vs 1 process | p99 latency | CPU % of a core per router process (throttled periods) | req per router CPU-second | request share | connections | CPU % of a core: backend / wrk / other | errors |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const kind of ["404 unknown_route", "keep-alive via backend"]) {
    const one = rows.find((r) => r.name.startsWith(kind) && r.n === 1);
    const two = rows.find((r) => r.name.startsWith(kind) && r.n === 2);
    for (const row of [one, two]) {
      if (!row) continue;
      const b = best(row.runs) as CappedRun;
      const others = row.runs.filter((x) => x !== b).map((x) => fmt(x.rps));
      const base = one ? best(one.runs).rps : NaN;
      results.push(
        `| ${row.name} | ${fmt(b.rps)}${
          others.length ? ` (${others.join(", ")})` : ""
        } | ${fmt(b.rps / base, 2)}× | ${fmt(b.p99Ms, 2)} ms | ${
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
        `2 router processes vs 1, each capped at ${CPU_CAP} core (${kind})`,
        `${fmt(r2)} vs ${fmt(r1)}`,
        `${fmt(r2 / r1, 2)}×`,
        "2 processes > 1 process",
      ]);
    }
  }
  results.push("");
}

// ------------------------------------------------------------- 2. scale

async function scale(): Promise<void> {
  const sizes = QUICK ? [1_000, 10_000] : [1_000, 10_000, 100_000];
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
    "| Endpoints | parse + register | per second | RSS after GC | RSS growth | JS heap growth | lookup, all routes | lookup, 1,000 busy routes | of which Host string | bare `Map` lookup, all routes |",
    "|---|---|---|---|---|---|---|---|---|---|",
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

// ------------------------------------------- 3a. NATS → bus + Registry

async function natsProbe(): Promise<void> {
  const p = spawn("nats apply probe", DENO, [
    "run",
    "-A",
    "bench/router_nats_apply.ts",
    nats.url,
    String(NATS_N),
  ]);
  await until("probe ready", () => p.lines.length > 0, 20_000, p);
  const msgs = registrations(NATS_N);
  const start = await publishAll(msgs);
  const published = performance.timeOrigin + performance.now();
  await until("probe result", () => p.lines.length > 1, 120_000, p);
  const r = JSON.parse(p.lines[1]!);
  await stop(p);
  results.push(
    "### NATS → `NatsRouteBus` + `Registry` (separate process, no HTTP)",
    "",
    "| Measure | Value |",
    "|---|---|",
    `| messages | ${fmt(NATS_N)} (invalid: ${r.invalid}) |`,
    `| publish time (one client) | ${fmt(published - start)} ms |`,
    `| first publish → last applied | ${fmt(r.last_ms - start)} ms |`,
    `| registrations/s applied | ${
      fmt(NATS_N / ((r.last_ms - start) / 1000))
    } |`,
    `| RSS of the probe after | ${fmt(r.rss_mb)} MB |`,
    "",
  );
  summary.push([
    "router",
    "registrations/s applied from NATS (NatsRouteBus + Registry only)",
    fmt(NATS_N / ((r.last_ms - start) / 1000)),
    "",
    "≥ 50k/s",
  ]);
}

// --------------------------------------------------------- CPU profile

/** Prints the top self-time functions of the router's `.cpuprofile`. */
async function summarizeProfile(dir: string): Promise<void> {
  interface Node {
    id: number;
    hitCount?: number;
    children?: number[];
    callFrame: { functionName: string; url: string; lineNumber: number };
  }
  let file: string | undefined;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".cpuprofile")) file = `${dir}/${e.name}`;
    }
  } catch {
    // no profile
  }
  if (!file) {
    notes.push("- --cpu-prof: no profile was written.");
    return;
  }
  const prof = JSON.parse(await Deno.readTextFile(file)) as {
    nodes: Node[];
  };
  const self = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    const f = n.callFrame;
    if (f.functionName === "(idle)") continue;
    total += hits;
    const where = f.url.replace(/^.*\/(?=[^/]+$)/, "");
    const key = `${f.functionName || "(anonymous)"} ${where}:${
      f.lineNumber + 1
    }`;
    self.set(key, (self.get(key) ?? 0) + hits);
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20);
  // Who calls the hottest function (eight frames up), weighted by its self time.
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, Node>();
  for (const n of prof.nodes) {
    for (const c of n.children ?? []) parent.set(c, n);
  }
  const name = (n: Node | undefined) =>
    n
      ? `${n.callFrame.functionName || "(anonymous)"} ${
        n.callFrame.url.replace(/^.*\/(?=[^/]+$)/, "")
      }`
      : "-";
  const hottest = top[0]?.[0].split(" ")[0];
  const callers = new Map<string, number>();
  for (const n of prof.nodes) {
    if (n.callFrame.functionName !== hottest || !n.hitCount) continue;
    const chain: string[] = [];
    let p = parent.get(n.id);
    while (p && chain.length < 8) {
      chain.push(name(p));
      p = parent.get(p.id);
    }
    const key = chain.join(" ← ");
    callers.set(key, (callers.get(key) ?? 0) + n.hitCount);
  }
  void byId;
  results.push(
    "### Router #1 CPU profile (whole run: HTTP load, NATS ingest; self time, % of busy samples)",
    "",
    "| Function | self % |",
    "|---|---|",
    ...top.map(([k, v]) => `| \`${k}\` | ${fmt((v / total) * 100, 1)} |`),
    "",
    `Callers of \`${hottest}\`:`,
    "",
    ...[...callers.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map((
      [k, v],
    ) => `- ${fmt((v / total) * 100, 1)}%: \`${k}\``),
    "",
  );
}

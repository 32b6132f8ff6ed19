/**
 * Proxy benchmark (not a test): `deno run -A bench/proxy.ts [--quick]`.
 *
 * One trivial HTTP backend (`proxy_backend.ts`, its own process) behind:
 * - `sigil proxy` (`deno run -A main.ts proxy`, its own process, one JS thread),
 * - haproxy (Debian package, `nbthread 1`, `mode tcp`, same certificate),
 * - the bare node:tls → node:net pipe (`proxy_bare.ts`): the platform's floor,
 *   to tell Deno's share of a gap from sigil's,
 * - nothing (direct plaintext to the backend).
 * Measures keep-alive req/s and new-connection req/s (wrk), the same in mTLS
 * mode (`ab -E`, haproxy `verify required`), bulk download and upload MB/s
 * (wrk, 1 MiB bodies), RSS of one proxy process serving 1 vs 50 instances,
 * and the proxy's fd count before and after 10,000 app-closed connections.
 * Each run also reads the CPU time the proxy process used (/proc/PID/stat),
 * so the table gives requests per CPU-second as well: on a shared machine
 * that is the figure that does not depend on what the other processes left.
 * Prints a markdown table with ratios, then a `SUMMARY` line for `run.ts`.
 * @module
 */
import { freePort } from "../tests/_helpers/ports.ts";
import { writeProxyConfig } from "./_lib/backend.ts";
import { cpuModel, cpuSeconds, fds, rssKb } from "./_lib/os.ts";
import { writeBenchPki } from "./_lib/pki.ts";
import { DENO, output as run, ProcGroup, ROOT, waitPort } from "./_lib/proc.ts";
import { runWrk } from "./_lib/wrk.ts";
import type { WrkOptions } from "./_lib/wrk.ts";

const QUICK = Deno.args.includes("--quick");
const DUR = QUICK ? 2 : 3;
const RUNS = QUICK ? 1 : 2;
const dir = await Deno.makeTempDir({ prefix: "sigil-proxy-bench-" });
const procs = new ProcGroup();

function spawn(cmd: string, args: string[]): Deno.ChildProcess {
  return procs.spawn(cmd, cmd, args, { quiet: true }).child;
}

interface Load {
  rps: number;
  errors: number;
  /** Requests (or MB) per CPU-second of the measured proxy process. */
  perCpu?: number;
}

/** Runs `fn` and adds the per-CPU-second rate of process `pid` to its result. */
async function withCpu(
  pid: number,
  fn: () => Promise<Load>,
): Promise<Load> {
  const c0 = cpuSeconds(pid), t0 = performance.now();
  const load = await fn();
  const secs = (performance.now() - t0) / 1000, cpu = cpuSeconds(pid) - c0;
  return { ...load, perCpu: cpu > 0 ? (load.rps * secs) / cpu : undefined };
}

/** One wrk run of `DUR` seconds (`-c50` unless `connections` says). */
async function wrk(
  url: string,
  o: Partial<WrkOptions> = {},
): Promise<Load> {
  const r = await runWrk(url, { duration: `${DUR}s`, ...o });
  return { rps: r.rps || 0, errors: r.errorCount };
}

async function ab(url: string, keepAlive: boolean, pem: string): Promise<Load> {
  const out = await run("ab", [
    ...(keepAlive ? ["-k"] : []),
    "-q",
    "-c",
    "50",
    "-t",
    String(DUR),
    "-n",
    "5000000",
    "-E",
    pem,
    url,
  ]);
  const rps = Number(/Requests per second:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const failed = Number(/Failed requests:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { rps, errors: failed + non2xx };
}

// ------------------------------------------------------------------ setup
const { pki, instance: inst, client, caFile } = await writeBenchPki(dir, {
  trustDomain: "bench.sigil",
  instance: { instanceId: "bench-instance" },
  instanceDir: "creds",
  client: { name: "client", dnsNames: ["gorouter.service.cf.internal"] },
});
await Deno.writeTextFile(`${dir}/client.pem`, client.certPem + client.keyPem);
await Deno.writeTextFile(`${dir}/haproxy.pem`, inst.certPem + inst.keyPem);
await Deno.writeTextFile(
  `${dir}/upload.lua`,
  'wrk.method = "POST"\nwrk.body = string.rep("a", 1048576)\n' +
    'wrk.headers["Content-Type"] = "application/octet-stream"\n',
);

const backendPort = freePort();
spawn(DENO, ["run", "-A", "bench/proxy_backend.ts", String(backendPort)]);

const [sigilTls, sigilMtls, sigilAdmin] = [freePort(), freePort(), freePort()];
const listener = (port: number) => ({
  listen: `127.0.0.1:${port}`,
  app: `127.0.0.1:${backendPort}`,
});
await writeProxyConfig(`${dir}/sigil.yaml`, sigilAdmin, [
  {
    id: "bench-tls",
    credentials_dir: `${dir}/creds`,
    mode: "tls",
    listeners: [listener(sigilTls)],
  },
  {
    id: "bench-mtls",
    credentials_dir: `${dir}/creds`,
    mode: "mtls",
    trusted_client_cas: [caFile],
    allowed_client_sans: ["*.service.cf.internal"],
    listeners: [listener(sigilMtls)],
  },
]);
const sigil = spawn(DENO, [
  "run",
  "-A",
  "main.ts",
  "proxy",
  "--config",
  `${dir}/sigil.yaml`,
]);

const [bareTls, bareMtls] = [freePort(), freePort()];
const bare = spawn(DENO, [
  "run",
  "-A",
  "bench/proxy_bare.ts",
  String(bareTls),
  String(bareMtls),
  String(backendPort),
  dir,
]);

const [haTls, haMtls] = [freePort(), freePort()];
await Deno.writeTextFile(
  `${dir}/haproxy.cfg`,
  [
    "global",
    "  nbthread 1",
    "  maxconn 4000",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "frontend tls",
    `  bind 127.0.0.1:${haTls} ssl crt ${dir}/haproxy.pem`,
    "  default_backend app",
    "frontend mtls",
    `  bind 127.0.0.1:${haMtls} ssl crt ${dir}/haproxy.pem ca-file ${dir}/ca.pem verify required`,
    "  default_backend app",
    "backend app",
    `  server s1 127.0.0.1:${backendPort}`,
  ].join("\n") + "\n",
);
const haproxy = spawn("haproxy", ["-db", "-f", `${dir}/haproxy.cfg`]);
await Promise.all(
  [backendPort, sigilTls, sigilMtls, bareTls, bareMtls, haTls, haMtls].map(
    (p) => waitPort(p),
  ),
);

// ------------------------------------------------------------ measurements
// measure, direct, sigil, floor, haproxy, ratio, per-CPU-second ratio
type Row = [string, string, string, string, string, string, string];
const rows: Row[] = [];
const summary: string[][] = [];
const fmt = (n: number) =>
  n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1);
const fmtLoad = (l: Load, unit = "") =>
  `${fmt(l.rps)}${unit}${l.errors ? ` (${l.errors} errors)` : ""}`;
const ratio = (a: number, b: number) => b > 0 ? (a / b).toFixed(2) : "n/a";
const perCpu = (l: Load, unit: string) =>
  l.perCpu === undefined ? "" : ` (${fmt(l.perCpu)}${unit} per CPU-s)`;

async function compare(
  measure: string,
  target: string,
  fn: (url: string) => Promise<Load>,
  urls: { direct?: string; sigil: string; bare: string; haproxy: string },
  scale = 1,
  unit = "",
) {
  // The machine is shared: sigil, the floor and haproxy run interleaved,
  // RUNS times each, and the best run of each counts.
  const direct = urls.direct ? await fn(urls.direct) : undefined;
  const best = (a: Load | undefined, b: Load) => !a || b.rps > a.rps ? b : a;
  let s: Load | undefined, b: Load | undefined, h: Load | undefined;
  for (let i = 0; i < RUNS; i++) {
    s = best(s, await withCpu(sigil.pid, () => fn(urls.sigil)));
    b = best(b, await withCpu(bare.pid, () => fn(urls.bare)));
    h = best(h, await withCpu(haproxy.pid, () => fn(urls.haproxy)));
  }
  const scaled = (l: Load): Load => ({
    ...l,
    rps: l.rps * scale,
    perCpu: l.perCpu === undefined ? undefined : l.perCpu * scale,
  });
  const sv = scaled(s!), bv = scaled(b!), hv = scaled(h!);
  const dv = direct ? scaled(direct) : undefined;
  const cpuRatio = sv.perCpu && hv.perCpu
    ? `${ratio(sv.perCpu, hv.perCpu)}× haproxy, ${
      bv.perCpu ? ratio(sv.perCpu, bv.perCpu) : "n/a"
    }× floor`
    : "n/a";
  rows.push([
    measure,
    dv ? fmtLoad(dv, unit) : "–",
    fmtLoad(sv, unit) + perCpu(sv, unit),
    fmtLoad(bv, unit) + perCpu(bv, unit),
    fmtLoad(hv, unit) + perCpu(hv, unit),
    `${ratio(sv.rps, hv.rps)}× haproxy, ${ratio(sv.rps, bv.rps)}× floor${
      dv ? `, ${ratio(sv.rps, dv.rps)}× direct` : ""
    }`,
    cpuRatio,
  ]);
  summary.push([
    "proxy",
    measure,
    fmtLoad(sv, unit),
    `${ratio(sv.rps, hv.rps)}× haproxy (${ratio(sv.rps, bv.rps)}× floor; ` +
    `per CPU-s ${
      sv.perCpu && hv.perCpu ? ratio(sv.perCpu, hv.perCpu) : "n/a"
    }×)`,
    target,
  ]);
  console.error(`done: ${measure}`);
}

const direct = `http://127.0.0.1:${backendPort}`;
const viaSigil = `https://127.0.0.1:${sigilTls}`;
const viaHa = `https://127.0.0.1:${haTls}`;
const viaSigilM = `https://127.0.0.1:${sigilMtls}`;
const viaHaM = `https://127.0.0.1:${haMtls}`;
const viaBare = `https://127.0.0.1:${bareTls}`;
const viaBareM = `https://127.0.0.1:${bareMtls}`;

await wrk(`${viaSigil}/`, { duration: "1s" }).catch(() => undefined); // warm-up
await compare(
  "keep-alive req/s (wrk -c50)",
  "≥ 0.8× haproxy",
  (u) => wrk(`${u}/`),
  {
    direct,
    sigil: viaSigil,
    bare: viaBare,
    haproxy: viaHa,
  },
);
await compare(
  "new connection per request, req/s (wrk, Connection: close)",
  "≥ 1.0× haproxy",
  (u) => wrk(`${u}/`, { headers: ["Connection: close"] }),
  { direct, sigil: viaSigil, bare: viaBare, haproxy: viaHa },
);
await compare(
  "mTLS keep-alive req/s (ab -k -c50 -E)",
  "≥ 0.8× haproxy",
  (u) => ab(`${u}/`, true, `${dir}/client.pem`),
  { sigil: viaSigilM, bare: viaBareM, haproxy: viaHaM },
);
await compare(
  "mTLS new connection per request, req/s (ab -c50 -E)",
  "≥ 1.0× haproxy",
  (u) => ab(`${u}/`, false, `${dir}/client.pem`),
  { sigil: viaSigilM, bare: viaBareM, haproxy: viaHaM },
);
await compare(
  "bulk download MB/s (wrk -c4, 1 MiB bodies)",
  "≥ 0.7× haproxy",
  (u) => wrk(`${u}/bulk`, { connections: 4 }),
  { direct, sigil: viaSigil, bare: viaBare, haproxy: viaHa },
  1.048576,
  " MB/s",
);
await compare(
  "bulk upload MB/s (wrk -c4, 1 MiB POST bodies)",
  "≥ 0.7× haproxy",
  (u) =>
    wrk(`${u}/upload`, {
      connections: 4,
      script: `${dir}/upload.lua`,
    }),
  { direct, sigil: viaSigil, bare: viaBare, haproxy: viaHa },
  1.048576,
  " MB/s",
);

// fd count after 10,000 app-closed connections (HTTP/1.0: the app closes).
const sigilPid = sigil.pid;
await new Promise((r) => setTimeout(r, 500));
const fdBefore = fds(sigilPid);
const abOut = await run("ab", [
  "-q",
  "-n",
  "10000",
  "-c",
  "20",
  `${viaSigil}/`,
]);
const completed = Number(/Complete requests:\s+(\d+)/.exec(abOut)?.[1] ?? 0);
await new Promise((r) => setTimeout(r, 1000));
const fdAfter = fds(sigilPid);
rows.push([
  "fds of the proxy before → after 10,000 app-closed connections",
  "–",
  `${fdBefore} → ${fdAfter} (${completed} completed)`,
  "–",
  "–",
  `${Math.max(0, fdAfter - fdBefore)} leaked`,
  "",
]);
summary.push([
  "proxy",
  "fds leaked after 10,000 app-closed connections",
  String(Math.max(0, fdAfter - fdBefore)),
  "",
  "0",
]);

// RSS: one process serving 1 instance vs 50 instances (after one handshake each).
async function rssWith(n: number, attempt = 1): Promise<number> {
  const ports: number[] = [];
  const instances = [];
  for (let i = 0; i < n; i++) {
    const d = `${dir}/rss/i${i}`;
    await pki.writeInstance(d, { instanceId: `rss-${i}` });
    const p = freePort();
    ports.push(p);
    instances.push({
      credentials_dir: d,
      mode: "tls" as const,
      listeners: [listener(p)],
    });
  }
  await writeProxyConfig(`${dir}/rss${n}.yaml`, freePort(), instances);
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "main.ts", "proxy", "--config", `${dir}/rss${n}.yaml`],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = new Response(child.stderr).text();
  try {
    await Promise.all(ports.map((p) => waitPort(p)));
  } catch (err) {
    // A port picked by freePort() can be taken again before the proxy binds
    // it (the load runs before this leave many ephemeral ports in use).
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const said = (await log).trim().split("\n").at(-1) ?? "";
    console.error(`rss run ${attempt} failed: ${err}; sigil proxy: ${said}`);
    if (attempt < 3) return rssWith(n, attempt + 1);
    throw err;
  }
  for (const p of ports) {
    await run("curl", ["-sk", "-o", "/dev/null", `https://127.0.0.1:${p}/`]);
  }
  await new Promise((r) => setTimeout(r, 500));
  const kb = rssKb(child.pid);
  child.kill("SIGTERM");
  await child.status;
  await log;
  return kb;
}
const rss1 = await rssWith(1);
const rss50 = await rssWith(50);
const perInstance = (rss50 - rss1) / 49 / 1024;
rows.push([
  "RSS of one proxy process: 1 instance → 50 instances",
  "–",
  `${(rss1 / 1024).toFixed(1)} MB → ${(rss50 / 1024).toFixed(1)} MB`,
  "–",
  "–",
  `${perInstance.toFixed(2)} MB per extra instance`,
  "",
]);
summary.push([
  "proxy",
  "RSS per additional instance",
  `${perInstance.toFixed(2)} MB`,
  "",
  "< 2 MB",
]);

// ------------------------------------------------------------------ report
await procs.stopAll();
await Deno.remove(dir, { recursive: true });

const cpu = cpuModel();
console.log(
  `Proxy benchmark, ${
    new Date().toISOString().slice(0, 16).replace("T", " ")
  } UTC; ` +
    `${navigator.hardwareConcurrency} vCPU (${cpu}), deno ${Deno.version.deno}; ` +
    `load generator, proxy and backend share the machine; ${DUR} s per run, ` +
    `best of ${RUNS} interleaved runs for sigil, the floor and haproxy, ` +
    `one run direct. "floor" is the bare node:tls → node:net pipe ` +
    `(bench/proxy_bare.ts); "per CPU-s" counts the proxy process's own CPU ` +
    `time (user + system, all threads).\n`,
);
console.log(
  "| measure | direct (plaintext) | sigil proxy | floor: bare node:tls pipe | haproxy (nbthread 1) | sigil ratio | sigil ratio per CPU-second |",
);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log(`SUMMARY ${JSON.stringify(summary)}`);

/**
 * The router's HTTPS front against its plain listener (issue 19): one
 * `sigil router` (in this process, plain and HTTPS fronts), a plain
 * `Deno.serve` app behind it answering 1 KB and 200 KB bodies, and wrk
 * keep-alive runs through each front. Prints req/s, p99 and the HTTPS/plain
 * ratio per body size (target: 200 KB over HTTPS >= 0.8x plain).
 *
 * `deno run -A bench/router_https_front.ts [--quick] [--runs=N]`
 * @module
 */
import { startRouter } from "../lib/router/mod.ts";
import { RouterSection } from "../lib/config/mod.ts";
import { createLogger } from "../lib/observe/mod.ts";
import { createTestPki } from "../tests/_helpers/pki.ts";
import { routerBenchOptions } from "./_lib/options.ts";
import { ProcGroup } from "./_lib/proc.ts";
import { machine } from "./_lib/os.ts";
import { fmt, Report, tableHead } from "./_lib/report.ts";
import { runWrk } from "./_lib/wrk.ts";
import type { WrkResult } from "./_lib/wrk.ts";
import { best, startApp } from "./_lib/router.ts";

const HOST = "localhost";
const o = routerBenchOptions(Deno.args);
const report = new Report();
const procs = new ProcGroup();
const tmp = await Deno.makeTempDir({ prefix: "sigil-bench-https-front-" });
try {
  const pki = await createTestPki();
  const front = await pki.issueClient({
    dnsNames: [HOST],
    ips: ["127.0.0.1"],
  });
  await Deno.writeTextFile(`${tmp}/front.crt`, front.certPem);
  await Deno.writeTextFile(`${tmp}/front.key`, front.keyPem, { mode: 0o600 });
  const { port: appPort } = await startApp(procs);
  const router = await startRouter(
    RouterSection.parse({
      listen: "127.0.0.1:0",
      https: {
        listen: "127.0.0.1:0",
        cert: `${tmp}/front.crt`,
        key: `${tmp}/front.key`,
      },
      api: { enabled: false },
      access_log: { enabled: false },
      log_level: "error",
    }),
    { logger: createLogger("bench", { level: "error" }) },
  );
  router.apply("register", { host: "127.0.0.1", port: appPort, uris: [HOST] });
  report.header.push(
    `Date: ${
      new Date().toISOString()
    }; machine: ${machine()}; Deno ${Deno.version.deno}.`,
    `sigil router (in the bench process) -> plain Deno.serve app; wrk -t1 -c50 -d${o.duration} keep-alive (after a ${o.warmup} warm-up), ${o.runs} run(s) each, best shown.`,
  );
  const measure = async (url: string): Promise<WrkResult> => {
    await runWrk(url, { duration: o.warmup });
    const runs: WrkResult[] = [];
    for (let i = 0; i < o.runs; i++) {
      runs.push(await runWrk(url, { duration: o.duration, latency: true }));
    }
    return best(runs);
  };
  // One connection: a delayed-ACK stall shows as a p50 of ~40 ms whatever
  // the machine's load.
  const single = async (url: string): Promise<WrkResult> =>
    await runWrk(url, { duration: o.warmup, connections: 1, latency: true });
  report.results.push(
    ...tableHead([
      "body",
      "plain req/s",
      "plain p99",
      "HTTPS req/s",
      "HTTPS p99",
      "HTTPS / plain",
      "1 conn p50 plain / HTTPS",
    ]),
  );
  for (
    const [label, path] of [["1 KB", "/bytes/1024"], [
      "200 KB",
      "/bytes/204800",
    ]]
  ) {
    const plain = await measure(`http://${HOST}:${router.port}${path}`);
    const tls = await measure(`https://${HOST}:${router.httpsPort}${path}`);
    const plain1 = await single(`http://${HOST}:${router.port}${path}`);
    const tls1 = await single(`https://${HOST}:${router.httpsPort}${path}`);
    const ratio = tls.rps / plain.rps;
    const errors = [plain, tls].map((r) => r.errors).filter((e) => e !== "");
    report.results.push(
      `| ${label} | ${fmt(plain.rps)} | ${plain.p99} | ${
        fmt(tls.rps)
      } | ${tls.p99} | ${fmt(ratio, 2)}x | ${plain1.p50} / ${tls1.p50} |`,
    );
    if (errors.length) report.notes.push(`- ${label}: ${errors.join("; ")}`);
    report.summary.push([
      "router",
      `HTTPS front keep-alive, ${label} bodies, vs plain`,
      `${fmt(tls.rps)} req/s`,
      `${fmt(ratio, 2)}x`,
      label === "200 KB" ? ">= 0.8x" : "",
    ]);
  }
  await router.close();
} finally {
  await procs.stopAll();
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
report.print();

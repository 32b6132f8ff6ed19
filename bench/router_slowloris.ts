/**
 * A normal client's latency through the router while 5,000 slowloris
 * connections are open (issue 20): each sends a request line and then one
 * header line every 5 s, never finishing its head, and reconnects when the
 * router cuts it (`read_header_timeout`, 10 s by default). wrk runs
 * keep-alive against a plain `Deno.serve` app behind the router, first alone
 * (baseline), then under the attack. Target: p99 under attack within 2x of
 * the baseline.
 *
 * `deno run -A bench/router_slowloris.ts [--quick] [--conns=5000]`
 * (`... router PORT APP_PORT API_PORT DIR` is the router process it spawns.)
 * @module
 */
import { routerBenchOptions } from "./_lib/options.ts";
import { accepts, DENO, ProcGroup, until } from "./_lib/proc.ts";
import { machine } from "./_lib/os.ts";
import { fmt, Report, tableHead } from "./_lib/report.ts";
import { runWrk } from "./_lib/wrk.ts";
import { metric, startApp } from "./_lib/router.ts";
import { freePort } from "../tests/_helpers/ports.ts";

const HOST = "app.bench.test";

if (Deno.args[0] === "router") await routerProcess(Deno.args.slice(1));
else await main();

/** The router under test, in its own process so the attack costs it alone. */
async function routerProcess([port, appPort, apiPort, dir]: string[]) {
  const { startRouter } = await import("../lib/router/mod.ts");
  const { RouterSection } = await import("../lib/config/mod.ts");
  const { createLogger } = await import("../lib/observe/mod.ts");
  const { publicKey } = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  );
  const jwk = await crypto.subtle.exportKey("jwk", publicKey);
  await Deno.writeTextFile(`${dir}/api.jwk`, JSON.stringify(jwk));
  const router = await startRouter(
    RouterSection.parse({
      listen: `127.0.0.1:${port}`,
      api: {
        listen: `127.0.0.1:${apiPort}`,
        public_key_file: `${dir}/api.jwk`,
      },
      access_log: { enabled: false },
      log_level: "error",
    }),
    { logger: createLogger("bench", { level: "error" }) },
  );
  router.apply("register", {
    host: "127.0.0.1",
    port: Number(appPort),
    uris: [HOST],
  });
  console.log(JSON.stringify({ ready: true }));
}

/** Slowloris connections to `port`, kept at `n` open until `stop()`. */
function slowloris(port: number, n: number) {
  const enc = new TextEncoder();
  const open = new Set<Deno.Conn>();
  let stopped = false;
  let cut = 0;
  const openOne = async (): Promise<void> => {
    if (stopped) return;
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      open.add(c);
      await c.write(enc.encode(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n`));
      // Reconnect when the router cuts it.
      c.read(new Uint8Array(256)).catch(() => null).then(() => {
        if (!open.delete(c)) return;
        cut++;
        try {
          c.close();
        } catch { /* already closed */ }
        setTimeout(openOne, 50);
      });
    } catch {
      setTimeout(openOne, 200);
    }
  };
  let line = 0;
  const trickle = setInterval(() => {
    // One header line per connection every 5 s, spread over the interval.
    const all = [...open];
    const share = Math.ceil(all.length / 50);
    const start = (line * share) % Math.max(1, all.length);
    for (const c of all.slice(start, start + share)) {
      c.write(enc.encode(`X-Slow-${line}: a\r\n`)).catch(() => {});
    }
    line++;
  }, 100);
  return {
    async start() {
      for (let i = 0; i < n; i += 100) {
        await Promise.all(
          Array.from({ length: Math.min(100, n - i) }, () => openOne()),
        );
      }
    },
    get open() {
      return open.size;
    },
    get cut() {
      return cut;
    },
    stop() {
      stopped = true;
      clearInterval(trickle);
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      open.clear();
    },
  };
}

async function main() {
  const o = routerBenchOptions(Deno.args);
  const conns = Number(
    Deno.args.find((a) => a.startsWith("--conns="))?.slice(8) ?? 5000,
  );
  const report = new Report();
  const procs = new ProcGroup();
  const dir = await Deno.makeTempDir({ prefix: "sigil-bench-slowloris-" });
  let loris: ReturnType<typeof slowloris> | undefined;
  try {
    const [port, apiPort] = [freePort(), freePort()];
    const { port: appPort } = await startApp(procs);
    const router = procs.spawn("router", DENO, [
      "run",
      "-A",
      "bench/router_slowloris.ts",
      "router",
      String(port),
      String(appPort),
      String(apiPort),
      dir,
    ]);
    await until("router", () => accepts(apiPort), 20_000, router);
    report.header.push(
      `Date: ${
        new Date().toISOString()
      }; machine: ${machine()}; Deno ${Deno.version.deno}.`,
      `sigil router (own process, defaults: read_header_timeout 10s, max_connections 10000) -> plain Deno.serve app; wrk -t1 -c50 -d${o.duration} --latency keep-alive, 1 KB bodies (after a ${o.warmup} warm-up).`,
    );
    const url = `http://127.0.0.1:${port}/bytes/1024`;
    const wrk = () =>
      runWrk(url, {
        duration: o.duration,
        latency: true,
        headers: [`Host: ${HOST}`],
      });
    await runWrk(url, { duration: o.warmup, headers: [`Host: ${HOST}`] });
    const base = await wrk();
    loris = slowloris(port, conns);
    await loris.start();
    await until(
      `${conns} slowloris connections`,
      async () => {
        // NaN: a router without the gauge (before the front existed).
        const open = await metric(apiPort, "client_connections");
        return loris!.open >= conns * 0.95 &&
          (Number.isNaN(open) || open >= conns * 0.9);
      },
      60_000,
      router,
    );
    const during = await wrk();
    const openAtEnd = await metric(apiPort, "client_connections");
    const cut = await fetch(`http://127.0.0.1:${apiPort}/metrics`)
      .then((r) => r.text())
      .then((t) =>
        Number(
          t.match(
            /client_connections_timed_out_total\{reason="read_header"\} (\d+)/,
          )?.[1] ?? NaN,
        )
      );
    loris.stop();
    const ratio = during.p99Ms / base.p99Ms;
    report.results.push(
      ...tableHead([
        "client",
        "req/s",
        "p50",
        "p99",
        "router connections open",
        "errors",
      ]),
      `| wrk alone | ${
        fmt(base.rps)
      } | ${base.p50} | ${base.p99} | – | ${base.errorCount} |`,
      `| wrk + ${fmt(conns)} slowloris | ${
        fmt(during.rps)
      } | ${during.p50} | ${during.p99} | ${
        fmt(openAtEnd)
      } | ${during.errorCount} |`,
      "",
      `p99 under attack / baseline: ${
        fmt(ratio, 2)
      }x (target <= 2x). Slowloris connections cut by read_header_timeout during the run: ${
        fmt(cut)
      } (each reconnects).`,
    );
    report.summary.push([
      "router",
      `p99 with ${fmt(conns)} slowloris connections open vs alone`,
      during.p99,
      `${fmt(ratio, 2)}x`,
      "<= 2x",
    ]);
  } finally {
    loris?.stop();
    await procs.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  report.print();
}

/**
 * The router benchmarks' fixture: a temp dir, a nats-server, and (for the
 * sections that proxy requests) the certificates, a trivial app behind a
 * `sigil proxy` in mtls mode, and the route registration a proxy would send.
 * `sigil router` processes are started from it with the bench's config, and
 * everything it started is stopped by `close()`. One fixture per section run;
 * nothing is shared between sections.
 * @module
 */
import { NatsRouteBus } from "../../lib/routes/mod.ts";
import { createLogger } from "../../lib/observe/mod.ts";
import { startNatsServer } from "../../tests/_helpers/nats.ts";
import type { NatsServer } from "../../tests/_helpers/nats.ts";
import { freePort } from "../../tests/_helpers/ports.ts";
import { routerBenchOptions } from "./options.ts";
import type { RouterBenchOptions } from "./options.ts";
import { writeBenchPki } from "./pki.ts";
import type { BenchPki } from "./pki.ts";
import { accepts, DENO, ProcGroup, until } from "./proc.ts";
import type { Proc } from "./proc.ts";
import { machine } from "./os.ts";
import { Report } from "./report.ts";
import { runWrk } from "./wrk.ts";
import type { WrkResult } from "./wrk.ts";
import { startBackend } from "./backend.ts";
import type { Backend } from "./backend.ts";

export const ROUTE_HOST = "app.bench.test";
export const UNKNOWN_HOST = "nowhere.bench.test";
export const INSTANCE_ID = "bench-instance-0001";
/** The SAN of the routers' client certificate (the backend lets only it in). */
export const ROUTER_SAN = "router.bench.test";
const APP_GUID = "11111111-2222-4333-8444-555555555555";

/** The app, its proxy and the registration that routes to them. */
export interface Proxied {
  creds: BenchPki;
  appPort: number;
  app: Proc;
  backend: Backend;
  /** The pids of the app and the backend proxy (their CPU is "backend"). */
  backendPids: number[];
  /** Publishes the route's registration once. */
  register(): Promise<void>;
}

/** Options of {@linkcode RouterBench.startRouter}. */
export interface StartRouterOptions {
  /** Listen with SO_REUSEPORT (needs --unstable-net in Deno 2.9). */
  reusePort: boolean;
  /** Called right after the spawn (e.g. to move it into a cgroup). */
  onSpawn?: (p: Proc) => void;
  v8Flags?: string[];
  /** Keep the router's log lines matching this (`Proc.kept`). */
  keepStderr?: RegExp;
  /** Write a `--cpu-prof` profile here (default: router #1 with --cpu-prof). */
  cpuProfDir?: string;
  /** An HTTPS front listener on 127.0.0.1:`port` with this chain and key. */
  https?: { port: number; certFile: string; keyFile: string };
}

/** One section's router benchmark environment. */
export class RouterBench {
  readonly procs = new ProcGroup();
  readonly report = new Report();
  #sink?: NatsRouteBus;

  private constructor(
    readonly options: RouterBenchOptions,
    readonly tmp: string,
    readonly nats: NatsServer,
  ) {}

  /** A temp dir and a nats-server; `header` gets the date and machine. */
  static async open(options: RouterBenchOptions): Promise<RouterBench> {
    const tmp = await Deno.makeTempDir({ prefix: "sigil-bench-router-" });
    const nats = await startNatsServer();
    const b = new RouterBench(options, tmp, nats);
    b.report.header.push(
      `Date: ${
        new Date().toISOString()
      }; machine: ${machine()}; Deno ${Deno.version.deno}.`,
    );
    return b;
  }

  /** Adds the wrk settings line to the header. */
  describeWrk(): void {
    const o = this.options;
    this.report.header.push(
      `wrk -t1 -c50 -d${o.duration} --latency (after a ${o.warmup} warm-up), ${o.runs} run(s) each, best run shown with the others in brackets.`,
    );
  }

  /**
   * Certificates, the app, the backend proxy (or its stand-in, noted in the
   * report) and a NATS client for the route's registration.
   */
  async proxied(): Promise<Proxied> {
    const creds = await writeBenchPki(this.tmp, {
      instance: {
        instanceId: INSTANCE_ID,
        app: APP_GUID,
        space: "11111111-2222-4333-8444-666666666666",
        org: "11111111-2222-4333-8444-777777777777",
        ips: ["127.0.0.1"],
      },
      client: {
        name: "router",
        commonName: "router",
        dnsNames: [ROUTER_SAN],
      },
    });
    await Deno.writeTextFile(`${creds.instanceDir}/ca.pem`, creds.pki.rootPem);
    const { port: appPort, proc: app } = await startApp(this.procs);
    const backend = await startBackend(this.procs, {
      port: freePort(),
      appPort,
      instanceId: INSTANCE_ID,
      instanceDir: creds.instanceDir,
      caFile: creds.caFile,
      allowedClientSans: [ROUTER_SAN],
      configFile: `${this.tmp}/proxy.yaml`,
      notes: this.report.notes,
    });
    this.report.header.push(
      `Backend: ${backend.label} in front of a Deno.serve app (same for every row).`,
    );
    const sink = this.#sink = await NatsRouteBus.connect({
      servers: [this.nats.url],
      logger: createLogger("bench", { level: "error" }),
    });
    const registration = {
      host: "127.0.0.1",
      tls_port: backend.port,
      uris: [ROUTE_HOST],
      app: APP_GUID,
      private_instance_id: INSTANCE_ID,
      private_instance_index: "0",
      server_cert_domain_san: INSTANCE_ID,
    };
    return {
      creds,
      appPort,
      app,
      backend,
      backendPids: [app.child.pid, backend.proc.child.pid],
      register: () => sink.register(registration),
    };
  }

  /**
   * Starts `sigil router` #`n` on `port` (API on `apiPort`, metrics only:
   * writes need a token never minted here), routing to the bench backend
   * over mTLS; resolves once its API accepts.
   */
  async startRouter(
    port: number,
    apiPort: number,
    n: number,
    opts: StartRouterOptions,
  ): Promise<Proc> {
    const { tmp } = this;
    const { publicKey } = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["sign", "verify"],
    );
    const spki = new Uint8Array(
      await crypto.subtle.exportKey("spki", publicKey),
    );
    const pem = `-----BEGIN PUBLIC KEY-----\n${
      btoa(String.fromCharCode(...spki)).match(/.{1,64}/g)!.join("\n")
    }\n-----END PUBLIC KEY-----\n`;
    await Deno.writeTextFile(`${tmp}/api-key-${n}.pem`, pem);
    const cfg = `${tmp}/router-${n}.yaml`;
    await Deno.writeTextFile(
      cfg,
      [
        "router:",
        "  drain_wait: 0s",
        `  listen: 127.0.0.1:${port}`,
        `  reuse_port: ${opts.reusePort}`,
        `  id: ${n - 1}-bench-router`,
        "  log_level: warn",
        ...(opts.https
          ? [
            "  https:",
            `    listen: 127.0.0.1:${opts.https.port}`,
            `    cert: ${opts.https.certFile}`,
            `    key: ${opts.https.keyFile}`,
          ]
          : []),
        "  api:",
        `    listen: 127.0.0.1:${apiPort}`,
        `    public_key_file: ${tmp}/api-key-${n}.pem`,
        "  nats:",
        `    servers: [${this.nats.url}]`,
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
    const { traceGc, cpuProf } = this.options;
    const profDir = opts.cpuProfDir ??
      (cpuProf && n === 1 ? `${tmp}/prof` : undefined);
    const v8Flags = [...opts.v8Flags ?? [], ...(traceGc ? ["--trace-gc"] : [])];
    // Deno 2.9 still gates SO_REUSEPORT behind --unstable-net.
    const p = this.procs.spawn(`sigil router #${n}`, DENO, [
      "run",
      "-A",
      ...(opts.reusePort ? ["--unstable-net"] : []),
      ...(v8Flags.length ? [`--v8-flags=${v8Flags}`] : []),
      ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []),
      "main.ts",
      "router",
      "--config",
      cfg,
    ], { keepStderr: opts.keepStderr });
    opts.onSpawn?.(p);
    await until(`sigil router #${n}`, () => accepts(apiPort), 20_000, p);
    return p;
  }

  /**
   * Re-sends the registration until router `p` (API on `api`) has the route,
   * like a proxy's heartbeat (a router may not have subscribed yet when its
   * API starts answering).
   */
  routeLands(
    what: string,
    api: number,
    p: Proc,
    register: () => Promise<void>,
  ): Promise<void> {
    return until(
      `route in ${what}`,
      async () => {
        if ((await metric(api, "endpoints")) >= 1) return true;
        await register();
        await new Promise((r) => setTimeout(r, 100));
        return false;
      },
      20_000,
      p,
    );
  }

  /** One wrk run against the router (or nginx) on `port` with `Host: host`. */
  wrk(port: number, duration: string, host = ROUTE_HOST): Promise<WrkResult> {
    return runWrk(`http://127.0.0.1:${port}/`, {
      duration,
      latency: true,
      headers: [`Host: ${host}`],
      sampleCpu: true,
    });
  }

  /** Stops every process, the NATS client and server; removes the temp dir. */
  async close(): Promise<void> {
    await this.#sink?.close().catch(() => {});
    await this.procs.stopAll();
    await this.nats.stop();
    await Deno.remove(this.tmp, { recursive: true }).catch(() => {});
  }
}

/** Starts the `bench/router_backend.ts app` on a free port; resolves once it accepts. */
export async function startApp(
  procs: ProcGroup,
): Promise<{ port: number; proc: Proc }> {
  const port = freePort();
  const proc = procs.spawn("app", DENO, [
    "run",
    "-A",
    "bench/router_backend.ts",
    "app",
    String(port),
  ]);
  await until("app", () => accepts(port), 15_000, proc);
  return { port, proc };
}

/** The value of metric `name` (no labels) on a router's API, NaN if none. */
export async function metric(apiPort: number, name: string): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${apiPort}/metrics`);
    const text = await res.text();
    const re = new RegExp(`^\\S*${name}(?:\\{\\})? (\\S+)$`, "m");
    return Number(text.match(re)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** One HTTP/1.1 GET over a fresh TCP connection; returns the status code. */
export async function httpStatus(
  port: number,
  host: string,
  path = "/",
): Promise<number> {
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

/** The run with the most requests per second. */
export function best<T extends WrkResult>(runs: T[]): T {
  return runs.reduce((a, b) => (b.rps > a.rps ? b : a));
}

/** `12,345 (11,000, ...)`: the best run's req/s with the others'. */
export function rpsWithOthers(runs: WrkResult[], fmtN: (n: number) => string) {
  const b = best(runs);
  const others = runs.filter((x) => x !== b).map((x) => fmtN(x.rps));
  return `${fmtN(b.rps)}${others.length ? ` (${others.join(", ")})` : ""}`;
}

/**
 * Runs one section in its own {@linkcode RouterBench} (flags from
 * `Deno.args`), prints its report, and stops everything it started.
 */
export async function runSection(
  section: (bench: RouterBench) => Promise<void>,
  opts: { wrk: boolean },
): Promise<void> {
  const bench = await RouterBench.open(routerBenchOptions(Deno.args));
  try {
    if (opts.wrk) bench.describeWrk();
    await section(bench);
    bench.report.print();
  } finally {
    await bench.close();
  }
}

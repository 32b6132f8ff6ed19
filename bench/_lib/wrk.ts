/**
 * The load runner: one `wrk -t1` run (C, one thread, so the client costs the
 * shared CPUs as little as possible), its output parsed.
 * @module
 */
import { cpuTicks } from "./os.ts";

/** Options of {@linkcode runWrk}. */
export interface WrkOptions {
  /** e.g. `"10s"`. */
  duration: string;
  /** @default {50} */
  connections?: number;
  /** Ask wrk for its latency distribution (p50, p99). */
  latency?: boolean;
  /** Request headers, `"Name: value"`. */
  headers?: string[];
  /** A wrk Lua script (method, body, headers). */
  script?: string;
  /** Sample wrk's own CPU time every 200 ms until it exits. */
  sampleCpu?: boolean;
}

/** What one wrk run measured. */
export interface WrkResult {
  rps: number;
  /** Latency percentiles in ms (NaN without `latency`). */
  p50Ms: number;
  p99Ms: number;
  /** p50 / p99 as wrk printed them (`"12.87ms"`; `"?"` when absent). */
  p50: string;
  p99: string;
  /** wrk's error lines (socket errors; non-2xx or 3xx), `""` when none. */
  errors: string;
  /** The same as one count: socket errors plus non-2xx or 3xx responses. */
  errorCount: number;
  /** Non-2xx or 3xx responses alone. */
  non2xx: number;
  /** wrk's CPU time in clock ticks (with `sampleCpu`). */
  wrkTicks?: number;
  /** CPU % of a core of process groups during the run (set by the caller). */
  cpu?: Record<string, number>;
  /** wrk's whole stdout. */
  text: string;
}

/** `"870.00us"`, `"12.87ms"`, `"1.2s"` → ms. */
export function toMs(v: string): number {
  const m = v.match(/^([\d.]+)(us|ms|s)$/);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

/** Runs `wrk -t1` against `url` and parses what it printed. */
export async function runWrk(
  url: string,
  options: WrkOptions,
): Promise<WrkResult> {
  const child = new Deno.Command("wrk", {
    args: [
      "-t1",
      `-c${options.connections ?? 50}`,
      `-d${options.duration}`,
      ...(options.latency ? ["--latency"] : []),
      ...(options.headers ?? []).flatMap((h) => ["-H", h]),
      ...(options.script ? ["-s", options.script] : []),
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // wrk's own CPU time: sampled until it exits (the last sample is < 200 ms old).
  let wrkTicks: number | undefined;
  const outP = child.output();
  if (options.sampleCpu) {
    let done = false;
    void outP.finally(() => (done = true)).catch(() => {});
    wrkTicks = 0;
    while (!done) {
      wrkTicks = Math.max(wrkTicks, cpuTicks(child.pid));
      await Promise.race([outP, new Promise((r) => setTimeout(r, 200))]);
    }
  }
  const out = await outP;
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? NaN);
  const p50 = text.match(/^\s+50%\s+(\S+)/m)?.[1] ?? "?";
  const p99 = text.match(/^\s+99%\s+(\S+)/m)?.[1] ?? "?";
  const sockLine = text.match(/Socket errors:.*$/m)?.[0];
  const non2xxLine = text.match(/Non-2xx or 3xx responses:.*$/m)?.[0];
  const sock = sockLine?.match(
    /connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const non2xx = Number(non2xxLine?.match(/:\s*(\d+)/)?.[1] ?? 0);
  return {
    rps,
    p50Ms: toMs(p50),
    p99Ms: toMs(p99),
    p50,
    p99,
    errors: [sockLine, non2xxLine].filter(Boolean).join("; "),
    errorCount: non2xx +
      (sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0),
    non2xx,
    wrkTicks,
    text,
  };
}

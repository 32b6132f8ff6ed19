/**
 * Router benchmark (not a test): `deno run -A bench/router.ts [--quick]
 * [--only=http,scale-out,scale,nats,gorouter] [--runs=N] [--cpu-cap=0.4] [--trace-gc]
 * [--cpu-prof]`.
 *
 * Runs the router's sections one after another, each its own script and
 * process (each also runs alone; see the top of each file), and prints their
 * tables in this order, then one SUMMARY line for `bench/run.ts`:
 *
 * - `http`: `router_http.ts`, keep-alive HTTP through 1 and 2 router
 *   processes vs nginx, and the 404s the router answers itself.
 * - `scale-out`: `router_scale_out.ts`, 1 vs 2 router processes each under a
 *   cgroup CPU quota (needs root).
 * - `nats`: `router_nats.ts`, 100k registrations from NATS into a running
 *   router (default V8 settings, then `--memory-saver-mode`).
 * - `scale`: `router_table.ts`, the route table at 1k/10k/100k endpoints.
 * - `nats`: `router_nats_bus.ts`, the same registrations into a
 *   `NatsRouteBus` + `Registry` process alone.
 * - `gorouter`: `router_gorouter.ts`, sigil router vs the real gorouter
 *   (plain and HTTPS fronts, 1 KB / 200 KB bodies, new connections; 100k
 *   NATS registrations into both: time-to-routable and RSS).
 *
 * Needs wrk, nginx and nats-server (Debian packages).
 * @module
 */
import { DENO, ROOT } from "./_lib/proc.ts";

const SECTIONS: Array<[string, string]> = [
  ["http", "router_http.ts"],
  ["scale-out", "router_scale_out.ts"],
  ["nats", "router_nats.ts"],
  ["scale", "router_table.ts"],
  ["nats", "router_nats_bus.ts"],
  ["gorouter", "router_gorouter.ts"],
];
const only = Deno.args.find((a) => a.startsWith("--only="))?.slice(7).split(
  ",",
) ?? ["http", "scale-out", "scale", "nats", "gorouter"];
const passOn = Deno.args.filter((a) => !a.startsWith("--only="));
const summary: string[][] = [];

for (const [name, file] of SECTIONS) {
  if (!only.includes(name)) continue;
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", `bench/${file}`, ...passOn],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const lines: string[] = [];
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    if (line.startsWith("SUMMARY ")) {
      summary.push(...JSON.parse(line.slice(8)));
    } else lines.push(line);
  }
  while (lines.at(-1) === "") lines.pop();
  console.log(lines.join("\n"));
  if (!out.success) {
    console.log(`- bench/${file} failed (exit ${out.code}).`);
    summary.push([
      "router",
      `bench/${file} failed`,
      `exit ${out.code}`,
      "",
      "",
    ]);
  }
}
console.log(`SUMMARY ${JSON.stringify(summary)}`);

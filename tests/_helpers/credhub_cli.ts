/**
 * Cloud Foundry's real `credhub` CLI and `credhub-interpolate` (from
 * ../shared/peers, see its README) run against a test `sigil credhub`, each
 * with its own HOME so the CLI's `~/.credhub/config.json` stays in the test's
 * temp dir.
 * @module
 */
import type { RunResult } from "./proc.ts";
import { runCommand } from "./proc.ts";

const PEERS = new URL("../../../shared/peers/", import.meta.url).pathname;

/**
 * Gunzips a peer binary (`credhub`, `credhub-interpolate`) into `dir`.
 *
 * @returns The executable's path.
 */
export async function installPeer(dir: string, name: string): Promise<string> {
  const gz = `${PEERS}${name}.gz`;
  await Deno.stat(gz).catch((err) => {
    throw new Error(
      `Cannot run CF's ${name}: "${gz}" is missing (a checkout needs shared/ beside it)`,
      { cause: err },
    );
  });
  const bin = `${dir}/${name}`;
  const r = await runCommand("sh", ["-c", `gunzip -c '${gz}' > '${bin}'`]);
  if (r.code !== 0) throw new Error(`Cannot gunzip "${gz}": ${r.stderr}`);
  await Deno.chmod(bin, 0o755);
  return bin;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** The `credhub` CLI with HOME in a temp dir. */
export interface CredhubCli {
  bin: string;
  home: string;
  /** Runs `credhub ARGS`; output without colour codes. */
  run(args: string[], env?: Record<string, string>): Promise<RunResult>;
}

/**
 * Installs the CLI into `dir` with `dir/home` as its HOME.
 *
 * @example
 * ```ts ignore
 * const cli = await credhubCli(t.dir);
 * await cli.run(["api", t.ch.url, "--ca-cert", `${t.dir}/certs/ca.crt`]);
 * ```
 */
export async function credhubCli(dir: string): Promise<CredhubCli> {
  const bin = await installPeer(dir, "credhub");
  const home = `${dir}/home`;
  await Deno.mkdir(home, { recursive: true });
  return {
    bin,
    home,
    async run(args, env = {}) {
      const out = await new Deno.Command(bin, {
        args,
        cwd: dir,
        // Nothing (proxies, CREDHUB_*) leaks in from the environment running the tests.
        clearEnv: true,
        env: {
          HOME: home,
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          ...env,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return {
        code: out.code,
        stdout: dec.decode(out.stdout).replace(ANSI, ""),
        stderr: dec.decode(out.stderr).replace(ANSI, ""),
      };
    },
  };
}

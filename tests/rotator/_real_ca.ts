/**
 * A real `sigil ca serve` subprocess for rotator tests: `ca init`, `ca token`,
 * then serve on 127.0.0.1:0 and read the address from the "ca-listening" log.
 */
import { join } from "node:path";
import { sigil, SigilProcess } from "../_helpers/proc.ts";

export interface RealCa {
  url: string;
  bundlePath: string;
  tokenPath: string;
  proc: SigilProcess;
  stop(): Promise<void>;
}

export async function startRealCa(base: string): Promise<RealCa> {
  const dir = join(base, "ca");
  const init = await sigil(["ca", "init", "--dir", dir]);
  if (init.code !== 0) throw new Error(`ca init failed: ${init.stderr}`);
  const tok = await sigil([
    "ca",
    "token",
    "--dir",
    dir,
    "--subject",
    "cell1",
    "--app",
    "*",
    "--space",
    "*",
    "--org",
    "*",
    "--cidr",
    "0.0.0.0/0",
  ]);
  if (tok.code !== 0) throw new Error(`ca token failed: ${tok.stderr}`);
  const tokenPath = join(base, "token");
  await Deno.writeTextFile(tokenPath, tok.stdout.trim() + "\n", {
    mode: 0o600,
  });
  const config = join(base, "ca.yaml");
  await Deno.writeTextFile(
    config,
    [
      "ca:",
      `  dir: ${dir}`,
      '  listen: "127.0.0.1:0"',
      '  backdate: "0s"',
      "  rate_limit: {per_second: 100000, burst: 100000}",
      "",
    ].join("\n"),
  );
  const proc = new SigilProcess(["ca", "serve", "--config", config]);
  const line = await proc.waitForEvent("ca-listening");
  return {
    url: `https://${line.address}`,
    bundlePath: join(dir, "root.crt"),
    tokenPath,
    proc,
    stop: async () => {
      await proc.stop("SIGTERM");
    },
  };
}

/** A `rotator:` section as YAML. */
export function rotatorYaml(
  ca: { url: string; bundlePath: string; tokenPath: string },
  instances: Array<{ id: string; dir: string; ip?: string }>,
  extra: Record<string, string> = {},
): string {
  const lines = [
    "rotator:",
    `  ca_url: ${ca.url}`,
    `  ca_bundle: ${ca.bundlePath}`,
    `  token_file: ${ca.tokenPath}`,
    ...Object.entries(extra).map(([k, v]) => `  ${k}: ${v}`),
    "  instances:",
    ...instances.map((i) =>
      `    - {instance_id: ${i.id}, app: app-1, space: space-1, org: org-1, ips: [${
        i.ip ?? "10.0.0.5"
      }], dir: ${i.dir}}`
    ),
  ];
  return lines.join("\n") + "\n";
}

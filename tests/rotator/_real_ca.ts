/**
 * A real `sigil ca serve` subprocess for rotator tests: `ca init`, `ca token`,
 * then serve on 127.0.0.1:0 and read the address from the "ca-listening" log.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  certificateMatchesKey,
  parseCertificate,
  verifyChain,
} from "../../lib/pki/mod.ts";
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

/** What a reader sees: both files parse and belong together. */
export async function checkPair(ca: RealCa, dir: string, id: string) {
  const certPem = await Deno.readTextFile(join(dir, "instance.crt"));
  const keyPem = await Deno.readTextFile(join(dir, "instance.key"));
  assert.ok(
    await certificateMatchesKey(certPem, keyPem),
    `key matches cert in ${dir}`,
  );
  const info = parseCertificate(certPem);
  assert.equal(info.identity?.instanceId, id);
  await verifyChain(certPem, await Deno.readTextFile(ca.bundlePath));
  const keyMode = (await Deno.stat(join(dir, "instance.key"))).mode! & 0o777;
  assert.equal(keyMode, 0o600);
  return info;
}

/** The JSON log lines of `p` with this event name. */
export function events(
  p: SigilProcess,
  name: string,
): Array<Record<string, unknown>> {
  return p.lines.flatMap((l) => {
    try {
      const r = JSON.parse(l);
      return r.event === name ? [r] : [];
    } catch {
      return [];
    }
  });
}

/**
 * The variables Diego gives an app process, from the `launch` section and
 * the instance certificate: `CF_INSTANCE_CERT`/`_KEY` (executor
 * `instance_identity_handler.go`), `CF_INSTANCE_GUID`/`INSTANCE_GUID` and
 * `CF_INSTANCE_INDEX`/`INSTANCE_INDEX` (bbs `doc/environment.md`: the
 * `CF_` names are aliases), and `CF_INSTANCE_IP`, `_INTERNAL_IP`, `_PORT`,
 * `_ADDR`, `_PORTS` (executor `depot/steps/run_step.go`).
 * @module
 */
import { isAbsolute, join, resolve } from "node:path";
import type { LaunchSection } from "../config/mod.ts";
import { parseCertificate } from "../pki/mod.ts";

/** File names the rotator writes in an instance's credentials directory. */
const CERT_FILE = "instance.crt", KEY_FILE = "instance.key";

const abs = (p: string) => isAbsolute(p) ? p : resolve(p);

/**
 * Returns a copy of `env` with the instance variables set. Values from the
 * config win; what it leaves out keeps its value from `env`.
 *
 * @example
 * ```ts
 * import { instanceEnv } from "./_env.ts";
 * const env = await instanceEnv({ instance: { ip: "10.0.0.5", index: 2, ports: [{ internal: 8080, external: 61001 }] } } as never, {});
 * console.assert(env.CF_INSTANCE_ADDR === "10.0.0.5:61001" && env.INSTANCE_INDEX === "2");
 * console.assert(env.CF_INSTANCE_PORTS === '[{"external":61001,"internal":8080}]');
 * ```
 */
export async function instanceEnv(
  section: Pick<LaunchSection, "credentials_dir" | "instance">,
  env: Record<string, string>,
): Promise<Record<string, string>> {
  const out = { ...env };
  if (section.credentials_dir) {
    out.CF_INSTANCE_CERT = abs(join(section.credentials_dir, CERT_FILE));
    out.CF_INSTANCE_KEY = abs(join(section.credentials_dir, KEY_FILE));
  }
  const i = section.instance;
  let guid = i.guid ?? out.CF_INSTANCE_GUID ?? out.INSTANCE_GUID;
  if (!guid && out.CF_INSTANCE_CERT) {
    // Diego's instance GUID is the certificate's CN.
    try {
      guid = parseCertificate(await Deno.readTextFile(out.CF_INSTANCE_CERT))
        .identity?.instanceId;
    } catch {
      // No readable certificate yet: the GUID stays unset.
    }
  }
  if (guid) out.CF_INSTANCE_GUID = out.INSTANCE_GUID = guid;
  const index = i.index !== undefined
    ? String(i.index)
    : out.CF_INSTANCE_INDEX ?? out.INSTANCE_INDEX;
  if (index !== undefined) out.CF_INSTANCE_INDEX = out.INSTANCE_INDEX = index;
  if (i.ip === undefined && i.ports.length === 0) return out;
  const ip = i.ip ?? out.CF_INSTANCE_IP ?? "";
  out.CF_INSTANCE_IP = ip;
  out.CF_INSTANCE_INTERNAL_IP = i.internal_ip ?? ip;
  const first = i.ports[0];
  if (first) {
    // Diego: the first mapping's host port, when it has one.
    if (first.external) {
      out.CF_INSTANCE_PORT = String(first.external);
      out.CF_INSTANCE_ADDR = `${
        ip.includes(":") ? `[${ip}]` : ip
      }:${first.external}`;
    }
    out.PORT = String(first.internal);
    // Go's field order (external, internal, external_tls_proxy,
    // internal_tls_proxy), zero values omitted except internal.
    out.CF_INSTANCE_PORTS = JSON.stringify(i.ports.map((p) => ({
      ...(p.external ? { external: p.external } : {}),
      internal: p.internal,
      ...(p.external_tls_proxy
        ? { external_tls_proxy: p.external_tls_proxy }
        : {}),
      ...(p.internal_tls_proxy
        ? { internal_tls_proxy: p.internal_tls_proxy }
        : {}),
    })));
  } else {
    out.CF_INSTANCE_PORT = "";
    out.CF_INSTANCE_ADDR = "";
    out.CF_INSTANCE_PORTS = "[]";
  }
  return out;
}

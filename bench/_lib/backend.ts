/**
 * Backend servers for the benchmarks: a `sigil proxy` config written from an
 * object (one place for its YAML), and the router benches' backend, a `sigil
 * proxy` in mtls mode in front of the app (or, when the proxy cannot start,
 * the node:tls stand-in of `router_backend.ts`, with a note saying so).
 * @module
 */
import { stringify } from "yaml";
import { freePort } from "../../tests/_helpers/ports.ts";
import { accepts, DENO, until } from "./proc.ts";
import type { Proc, ProcGroup } from "./proc.ts";

/** One instance of a `sigil proxy` config (see config.example.yaml). */
export interface ProxyInstance {
  id?: string;
  credentials_dir: string;
  mode: "tls" | "mtls";
  trusted_client_cas?: string[];
  allowed_client_sans?: string[];
  listeners: { listen: string; app: string }[];
}

/** Writes a `sigil proxy` config with its admin API on 127.0.0.1:`adminPort`. */
export async function writeProxyConfig(
  file: string,
  adminPort: number,
  instances: ProxyInstance[],
): Promise<void> {
  await Deno.writeTextFile(
    file,
    stringify({
      proxy: { admin_listen: `127.0.0.1:${adminPort}`, instances },
    }),
  );
}

/** The router benches' backend. */
export interface Backend {
  port: number;
  /** What it is, for the report's header. */
  label: string;
  proc: Proc;
}

/** Options of {@linkcode startBackend}. */
export interface BackendOptions {
  port: number;
  appPort: number;
  instanceId: string;
  /** `instance.crt`, `instance.key` and `ca.pem` (for the stand-in). */
  instanceDir: string;
  /** The CA client certificates must chain to. */
  caFile: string;
  /** Client SANs let in (the routers' certificate; mode mtls requires one). */
  allowedClientSans: string[];
  configFile: string;
  /** Where to say that the stand-in was used instead. */
  notes: string[];
}

/** Starts the backend on 127.0.0.1:`port`, piping to the app. */
export async function startBackend(
  procs: ProcGroup,
  o: BackendOptions,
): Promise<Backend> {
  await writeProxyConfig(o.configFile, freePort(), [{
    id: o.instanceId,
    credentials_dir: o.instanceDir,
    mode: "mtls",
    trusted_client_cas: [o.caFile],
    allowed_client_sans: o.allowedClientSans,
    listeners: [{
      listen: `127.0.0.1:${o.port}`,
      app: `127.0.0.1:${o.appPort}`,
    }],
  }]);
  const p = procs.spawn("sigil proxy", DENO, [
    "run",
    "-A",
    "main.ts",
    "proxy",
    "--config",
    o.configFile,
  ]);
  try {
    await until("sigil proxy", () => accepts(o.port), 20_000, p);
    return { port: o.port, label: "`sigil proxy` (mode mtls)", proc: p };
  } catch (err) {
    await procs.stop(p);
    o.notes.push(
      `- sigil proxy could not start (${
        err instanceof Error ? err.message.split("\n")[0] : err
      }); the node:tls mTLS stand-in (bench/router_backend.ts tls-pipe) was used.`,
    );
  }
  const s = procs.spawn("tls stand-in", DENO, [
    "run",
    "-A",
    "bench/router_backend.ts",
    "tls-pipe",
    String(o.port),
    String(o.appPort),
    o.instanceDir,
  ]);
  await until("tls stand-in", () => accepts(o.port), 15_000, s);
  return {
    port: o.port,
    label:
      "node:tls mTLS stand-in (`bench/router_backend.ts tls-pipe`, not `sigil proxy`)",
    proc: s,
  };
}

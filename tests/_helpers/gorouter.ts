/**
 * Test helper: runs Cloud Foundry's real gorouter (`../shared/peers/
 * gorouter.gz`, routing-release April 2023) against a test NATS, and reads
 * its status port's `/routes`.
 *
 * @example
 * ```ts ignore
 * await using go = await startGorouter(dir, { natsPort: nats.port, caCerts: [pki.rootPem] });
 * const routes = await go.routes(); // {"host": [{address, tls, ...}]}
 * ```
 * @module
 */
import { stringify } from "yaml";
import { freePort } from "./ports.ts";

const PEERS = new URL("../../../shared/peers/", import.meta.url).pathname;

/** Options for {@linkcode startGorouter}. */
export interface GorouterOptions {
  /** NATS port on 127.0.0.1 that gorouter subscribes to. */
  natsPort: number;
  /** HTTP port for client traffic. @default {a free port} */
  port?: number;
  /** PEM strings gorouter trusts for TLS backends and route services. */
  caCerts?: string[];
  /**
   * gorouter's client certificate for TLS backends (`backends.cert_chain`,
   * `backends.private_key`, PEM strings): what a strict-mTLS proxy sees.
   */
  backendCert?: { certPem: string; keyPem: string };
  /** Further top-level config keys (e.g. `route_services_secret`). */
  extra?: Record<string, unknown>;
}

/** A running gorouter. */
export interface Gorouter extends AsyncDisposable {
  /** Client-traffic port. */
  readonly port: number;
  /** Status port (`/routes`, basic auth `u:p`). */
  readonly statusPort: number;
  /** Its process id (benchmarks read its CPU time and RSS). */
  readonly pid: number;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** GET /routes on the status port, parsed. */
  routes(): Promise<Record<string, Array<Record<string, unknown>>>>;
}

/** Status-port basic-auth credentials used by the helper. */
export const GOROUTER_STATUS_AUTH = { user: "u", pass: "p" };

/**
 * Writes gorouter's config into `dir`, gunzips the binary there, runs it and
 * resolves once it logs `gorouter.started` (or, with a `logging.level` in
 * `extra` that hides info lines, once its status port answers; 60 s bound); SIGKILLed when
 * disposed.
 */
export async function startGorouter(
  dir: string,
  options: GorouterOptions,
): Promise<Gorouter> {
  const port = options.port ?? freePort();
  const statusPort = freePort();
  const config: Record<string, unknown> = {
    status: {
      host: "127.0.0.1",
      port: statusPort,
      ...GOROUTER_STATUS_AUTH,
    },
    nats: { hosts: [{ hostname: "127.0.0.1", port: options.natsPort }] },
    port,
    index: 0,
    logging: { level: "info" },
    start_response_delay_interval: "1s",
    ...(options.caCerts ? { ca_certs: options.caCerts } : {}),
    ...(options.backendCert
      ? {
        backends: {
          cert_chain: options.backendCert.certPem,
          private_key: options.backendCert.keyPem,
        },
      }
      : {}),
    ...options.extra,
  };
  const bin = `${dir}/gorouter`;
  const gz = await Deno.readFile(`${PEERS}gorouter.gz`);
  const raw = new Response(
    new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip")),
  );
  await Deno.writeFile(bin, new Uint8Array(await raw.arrayBuffer()), {
    mode: 0o755,
  });
  await Deno.writeTextFile(`${dir}/gorouter.yml`, stringify(config));
  const child = new Deno.Command(bin, {
    args: ["-c", `${dir}/gorouter.yml`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) out += dec.decode(c);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const dispose = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await pumps;
  };
  const auth = btoa(
    `${GOROUTER_STATUS_AUTH.user}:${GOROUTER_STATUS_AUTH.pass}`,
  );
  const level = (options.extra?.logging as { level?: string } | undefined)
    ?.level ?? "info";
  const statusAnswers = () =>
    fetch(`http://127.0.0.1:${statusPort}/routes`, {
      headers: { authorization: `Basic ${auth}` },
    }).then(async (r) => (await r.body?.cancel(), r.status === 200))
      .catch(() => false);
  const deadline = Date.now() + 60_000;
  while (
    ["info", "debug"].includes(level)
      ? !out.includes('"gorouter.started"')
      : !(await statusAnswers())
  ) {
    if (Date.now() > deadline) {
      await dispose();
      throw new Error(`gorouter did not start:\n${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    statusPort,
    pid: child.pid,
    output: () => out,
    async routes() {
      const res = await fetch(`http://127.0.0.1:${statusPort}/routes`, {
        headers: { authorization: `Basic ${auth}` },
      });
      if (res.status !== 200) {
        throw new Error(
          `gorouter /routes answered ${res.status}: ${await res.text()}`,
        );
      }
      return await res.json();
    },
    [Symbol.asyncDispose]: dispose,
  };
}

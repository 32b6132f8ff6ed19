/**
 * The REAL gorouter (`../shared/peers/gorouter.gz`, routing-release April
 * 2023) for differential tests: unpacked into a test's temp dir, fed by a
 * test NATS server.
 * @module
 */
import { stringify } from "yaml";
import { freePort } from "../_helpers/ports.ts";
import { testPki } from "./_helpers.ts";

const PEERS = new URL("../../../shared/peers/", import.meta.url).pathname;

/** A running gorouter; disposing it kills it. */
export type Gorouter = AsyncDisposable & { output: () => string };

/**
 * Runs gorouter on `port`, subscribed to NATS on `natsPort`, trusting the
 * test PKI's root, with `extra` merged into its config; resolves once it
 * serves.
 */
export async function startGorouter(
  dir: string,
  port: number,
  natsPort: number,
  extra: Record<string, unknown> = {},
): Promise<Gorouter> {
  const config = {
    status: { host: "127.0.0.1", port: freePort(), user: "u", pass: "p" },
    nats: { hosts: [{ hostname: "127.0.0.1", port: natsPort }] },
    port,
    index: 0,
    logging: { level: "info" },
    start_response_delay_interval: "1s",
    ca_certs: [(await testPki()).rootPem],
    ...extra,
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
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) out += dec.decode(c);
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const deadline = Date.now() + 60_000;
  while (!out.includes('"gorouter.started"')) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`gorouter did not start:\n${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    output: () => out,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
      await pumps;
    },
  };
}

/**
 * Test helper: runs a real `nats-server` (Debian package) on a free loopback
 * port, and can stop and restart it on the same port to exercise reconnects.
 *
 * @example
 * ```ts ignore
 * import { startNatsServer } from "../_helpers/nats.ts";
 * await using nats = await startNatsServer();
 * // connect clients to nats.url ("nats://127.0.0.1:PORT")
 * await nats.restart(); // same port
 * ```
 * @module
 */
import { freePort } from "./ports.ts";

const CANDIDATES = [
  "/usr/sbin/nats-server",
  "/usr/bin/nats-server",
  "/usr/local/bin/nats-server",
];

/** Path of the `nats-server` binary, or `undefined` when none is installed. */
export function findNatsServer(): string | undefined {
  for (const p of CANDIDATES) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // try the next one
    }
  }
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const p = `${dir}/nats-server`;
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A running (or stopped) nats-server bound to one loopback port. */
export interface NatsServer extends AsyncDisposable {
  /** The port, stable across {@linkcode NatsServer.restart}. */
  readonly port: number;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Starts the server again on the same port (no-op when running). */
  start(): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL after 2 s) and waits for exit. */
  stop(): Promise<void>;
  /** Stops and starts again on the same port. */
  restart(): Promise<void>;
}

/** Options for {@linkcode startNatsServer}. */
export interface StartNatsOptions {
  /** Port to use. @default {a free port} */
  port?: number;
  /** Extra nats-server arguments (e.g. `["--tls", ...]`). */
  args?: string[];
  /** How long to wait for the port to accept. @default {10000} */
  readyTimeoutMs?: number;
}

/**
 * Starts `nats-server -a 127.0.0.1 -p PORT` and waits until it accepts TCP.
 *
 * @throws {Error} when nats-server is not installed or does not come up.
 */
export async function startNatsServer(
  options: StartNatsOptions = {},
): Promise<NatsServer> {
  const bin = findNatsServer();
  if (!bin) {
    throw new Error(
      "Cannot start nats-server: not installed (apt-get install -y nats-server)",
    );
  }
  const port = options.port ?? freePort();
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  let child: Deno.ChildProcess | undefined;

  const start = async () => {
    if (child) return;
    const cmd = new Deno.Command(bin, {
      args: ["-a", "127.0.0.1", "-p", String(port), ...(options.args ?? [])],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    });
    const c = cmd.spawn();
    child = c;
    let exited = false;
    const statusP = c.status.then((s) => {
      exited = true;
      return s;
    });
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (exited) {
        child = undefined;
        const s = await statusP;
        throw new Error(
          `Cannot start nats-server on port ${port}: exited with code ${s.code}`,
        );
      }
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return;
      } catch {
        if (Date.now() > deadline) {
          await stop();
          throw new Error(
            `Cannot start nats-server on port ${port}: not accepting after ${readyTimeoutMs} ms`,
          );
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  };

  const stop = async () => {
    const c = child;
    if (!c) return;
    child = undefined;
    try {
      c.kill("SIGTERM");
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        try {
          c.kill("SIGKILL");
        } catch {
          // already gone
        }
        resolve();
      }, 2000);
    });
    await Promise.race([c.status, killed]);
    await c.status;
    clearTimeout(timer);
  };

  await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    get running() {
      return child !== undefined;
    },
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Shared fixtures for proxy tests: a throw-away PKI, apps on loopback, proxy
 * configs, and TLS clients that verify the instance id as SAN.
 * @module
 */
import net from "node:net";
import { ProxySection } from "../../lib/config/mod.ts";
import type { z } from "zod";
import { createLogger } from "../../lib/observe/mod.ts";
import type { Logger } from "../../lib/observe/mod.ts";
import { createTestPki } from "../_helpers/pki.ts";
import type { TestPki } from "../_helpers/pki.ts";

export type { TestPki };
/** The proxy section as a test writes it. */
export type ProxySectionInput = z.input<typeof ProxySection>;
export { createTestPki };

/** A logger that keeps parsed lines for assertions. */
export function memoryLogger(): {
  logger: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("proxy", {
    level: "debug",
    sink: (l) => lines.push(JSON.parse(l)),
  });
  return { logger, lines };
}

/**
 * Resolves a proxy section from test input (zod defaults applied). The app
 * connect timeout is 10 s unless the input sets one: a loaded test machine
 * can miss the 250 ms default, and the client would see a closed connection.
 */
export function proxySection(input: ProxySectionInput): ProxySection {
  return ProxySection.parse({ connect_timeout: "10s", ...input });
}

/** A plain HTTP app on 127.0.0.1:0 that answers `hello <path>`. */
export function startHttpApp(
  body = (req: Request) => `hello ${new URL(req.url).pathname}`,
): Deno.HttpServer<Deno.NetAddr> & { port: number } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => new Response(body(req)),
  ) as Deno.HttpServer<Deno.NetAddr>;
  return Object.assign(server, { port: server.addr.port });
}

/** A TCP app (node:net) with a per-connection handler; closes cleanly. */
export async function startTcpApp(
  onConn: (s: net.Socket) => void,
): Promise<{ port: number; close(): Promise<void>; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    // Deno's node:net keeps a socket open after end() unless destroyed.
    let ended = false, finished = false;
    s.on("end", () => {
      ended = true;
      if (finished) s.destroy();
    });
    s.on("finish", () => {
      finished = true;
      if (ended) s.destroy();
    });
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Opens a TLS connection verifying `serverName` against `caPem`. */
export async function connectTls(
  port: number,
  serverName: string,
  caPem: string,
): Promise<Deno.TlsConn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  return await Deno.startTls(tcp, { hostname: serverName, caCerts: [caPem] });
}

/** Reads a Deno connection to EOF. */
export async function readAll(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(16384);
  let out = "";
  const dec = new TextDecoder();
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    out += dec.decode(buf.subarray(0, n), { stream: true });
  }
  return out;
}

/** One HTTP/1.1 GET over an open TLS connection (keep-alive); returns the body. */
export async function httpGet(
  conn: Deno.Conn,
  path = "/",
): Promise<string> {
  await conn.write(
    new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n\r\n`,
    ),
  );
  const buf = new Uint8Array(16384);
  let text = "";
  const dec = new TextDecoder();
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("connection closed mid-response");
    text += dec.decode(buf.subarray(0, n), { stream: true });
    const head = text.indexOf("\r\n\r\n");
    if (head === -1) continue;
    const m = /content-length:\s*(\d+)/i.exec(text.slice(0, head));
    const len = m ? Number(m[1]) : 0;
    if (text.length >= head + 4 + len) {
      return text.slice(head + 4, head + 4 + len);
    }
  }
}

/** Serial of the certificate a TLS server presents (via openssl s_client). */
export async function servedSerial(port: number): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      `openssl s_client -connect 127.0.0.1:${port} </dev/null 2>/dev/null | openssl x509 -noout -serial`,
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text.replace(/^serial=/, "").toLowerCase().replace(/^0+/, "");
}

/** Number of open file descriptors of this process. */
export function fdCount(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

/** Writes text files into a fresh temp dir; returns the dir. */
export async function tempDir(prefix = "sigil-proxy-test-"): Promise<string> {
  return await Deno.makeTempDir({ prefix });
}

/** Waits until `fn` is true (polling), or throws after `timeoutMs`. */
export async function waitFor(
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** Writes every byte (Deno's `write` may write only part). */
export async function writeAll(
  conn: Deno.Conn,
  data: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

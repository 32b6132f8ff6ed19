/**
 * One attempt to forward a request to one endpoint over the endpoint's
 * HTTP/1.1 connection pool, and the conversion of the backend's response into
 * the client's `Response` (streamed, or read whole when small).
 * @module
 */
import type { Endpoint, Pool } from "./_pool.ts";
import type { RouterStats } from "./_stats.ts";
import type { Transports } from "./_transport.ts";
import { failureReason } from "./_fails.ts";
import type { H1Conn, H1Handler, Phase } from "./_h1.ts";
import { HOP_RESPONSE, stickyCookie } from "./_headers.ts";

/** Responses up to this size (with a Content-Length) are sent as bytes. */
const SMALL_BODY = 64 * 1024;

/** Per-request state carried to the access log. */
export interface Exchange {
  start: number;
  startMs: number;
  method: string;
  host: string;
  path: string;
  remote: string;
  proto: string;
  requestId: string;
  headers: Record<string, string>;
  bytesIn: number;
  bytesOut: number;
  failed: number;
  ep: Endpoint | undefined;
  routerError: string;
  status: number;
}

/** Outcome of one attempt that did not produce a response. */
export interface AttemptFailure {
  err: unknown;
  phase: "dial" | "handshake" | "sent";
}

/** A request currently waiting on or streaming from a backend. */
export interface InFlight {
  started: number;
  conn: H1Conn | undefined;
}

/** What an {@linkcode Attempt} needs from the data path. */
export interface AttemptHost {
  transports: Transports;
  stats: RouterStats;
  stickyNames: string[];
  inflight: Set<InFlight>;
  finish(x: Exchange, status: number): void;
  errorResponse(
    x: Exchange,
    status: number,
    routerError: string,
    body: string,
  ): Response;
}

/**
 * One attempt against one endpoint: resolves to the client's Response once
 * the backend's response head arrived (or, for small bodies, the whole
 * response); rejects with an {@linkcode AttemptFailure} when no response
 * came back.
 */
export class Attempt implements H1Handler {
  readonly host: AttemptHost;
  readonly x: Exchange;
  readonly ep: Endpoint;
  readonly pool: Pool;
  readonly body: ReadableStream<Uint8Array> | null;
  readonly entry: InFlight;
  resolve!: (r: Response) => void;
  reject!: (f: AttemptFailure) => void;
  chunked = false;
  status = 0;
  headers: [string, string][] | undefined;
  // Small-body mode.
  small = false;
  first: Uint8Array<ArrayBuffer> | undefined;
  more: Uint8Array[] | undefined;
  // Stream mode.
  controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  conn: H1Conn | undefined;
  done = false;

  constructor(
    host: AttemptHost,
    x: Exchange,
    ep: Endpoint,
    pool: Pool,
    body: ReadableStream<Uint8Array> | null,
  ) {
    this.host = host;
    this.x = x;
    this.ep = ep;
    this.pool = pool;
    this.body = body;
    this.entry = { started: performance.now(), conn: undefined };
  }

  run(): Promise<Response> {
    const x = this.x;
    const ep = this.ep;
    const headers = x.headers;
    headers["x-cf-applicationid"] = ep.app;
    headers["x-cf-instanceid"] = ep.instanceId;
    headers["x-cf-instanceindex"] = ep.index;
    let head = `${x.method} ${x.path} HTTP/1.1\r\n`;
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
    if (this.body !== null && headers["content-length"] === undefined) {
      this.chunked = true;
      head += "transfer-encoding: chunked\r\n";
    }
    head += "\r\n";
    const conn = this.host.transports.poolFor(ep).acquire();
    this.conn = conn;
    this.entry.conn = conn;
    this.host.inflight.add(this.entry);
    return new Promise<Response>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      conn.start(head, this, x.method === "HEAD");
    });
  }

  onReady(conn: H1Conn): void {
    if (this.body === null) conn.finishRequest();
    else pumpBody(this.body, conn, this.x, this.chunked);
  }

  onHead(status: number, raw: string[]): void {
    const x = this.x;
    const ep = this.ep;
    const headers: [string, string][] = [];
    let setCookies: string[] | undefined;
    let length = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      if (HOP_RESPONSE.has(lower)) continue;
      const value = raw[i + 1]!;
      if (lower === "content-length") {
        length = Number(value);
        continue;
      }
      if (lower === "set-cookie" && this.host.stickyNames.length > 0) {
        (setCookies ??= []).push(value);
      }
      headers.push([name, value]);
    }
    headers.push(["x-vcap-request-id", x.requestId]);
    if (setCookies !== undefined && ep.instanceId !== "") {
      const vcap = stickyCookie(
        setCookies,
        this.host.stickyNames,
        ep.instanceId,
        this.pool,
      );
      if (vcap !== undefined) headers.push(["set-cookie", vcap]);
    }
    this.status = status;
    this.headers = headers;
    if (x.method === "HEAD" || status === 204 || status === 304) {
      if (length >= 0 && x.method === "HEAD") {
        headers.push(["content-length", String(length)]);
      }
      this.resolve(new Response(null, { status, headers }));
      return;
    }
    if (length >= 0 && length <= SMALL_BODY) {
      // Read the small body whole and send bytes: cheaper than a stream,
      // and a backend failing mid-body still gets a clean 502.
      this.small = true;
      return;
    }
    if (length >= 0) headers.push(["content-length", String(length)]);
    const conn = this.conn!;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      pull: () => conn.resume(),
      cancel: () => {
        conn.destroy();
        this.end();
      },
    }, { highWaterMark: 4 });
    this.resolve(new Response(stream, { status, headers }));
  }

  onData(chunk: Uint8Array): void {
    this.x.bytesOut += chunk.length;
    if (this.small) {
      if (this.first === undefined) {
        this.first = chunk as Uint8Array<ArrayBuffer>;
      } else (this.more ??= [this.first]).push(chunk);
      return;
    }
    const c = this.controller;
    if (c === undefined) return;
    c.enqueue(chunk);
    if ((c.desiredSize ?? 1) <= 0) this.conn!.pause();
  }

  onEnd(): void {
    if (this.small) {
      const body = this.more !== undefined
        ? concatBytes(this.more, this.x.bytesOut)
        : this.first ?? null;
      this.resolve(
        new Response(body, { status: this.status, headers: this.headers }),
      );
    } else {
      try {
        this.controller?.close();
      } catch {
        // Cancelled by the client.
      }
    }
    this.end();
  }

  onError(err: Error, phase: Phase, gotResponse: boolean): void {
    if (!gotResponse) {
      this.host.inflight.delete(this.entry);
      this.reject({ err, phase });
      return;
    }
    if (this.small) {
      this.host.stats.badGateways++;
      const res = this.host.errorResponse(
        this.x,
        502,
        `endpoint_failure (${failureReason(err, "reset")})`,
        "502 Bad Gateway: backend failed mid-response",
      );
      this.end();
      this.resolve(res);
      return;
    }
    try {
      this.controller?.error(err);
    } catch {
      // Already closed.
    }
    this.end();
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.host.inflight.delete(this.entry);
    this.ep.inflight--;
    if (this.x.status === 0) this.host.finish(this.x, this.status);
  }
}

function concatBytes(chunks: Uint8Array[], n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Writes the client's request body to the backend, with backpressure. */
async function pumpBody(
  body: ReadableStream<Uint8Array>,
  conn: H1Conn,
  x: Exchange,
  chunked: boolean,
): Promise<void> {
  const reader = body.getReader();
  const socket = conn.socket;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      x.bytesIn += value.length;
      if (chunked) conn.write(CHUNK_PREFIX(value.length));
      let ok = conn.write(value);
      if (chunked) ok = conn.write(CRLF);
      if (!ok) {
        await new Promise<void>((r) => {
          const done = () => {
            socket.off("drain", done);
            socket.off("close", done);
            r();
          };
          socket.on("drain", done);
          socket.on("close", done);
        });
      }
      if (!conn.alive) {
        await reader.cancel().catch(() => {});
        return;
      }
    }
    if (chunked) conn.write(LAST_CHUNK);
    conn.finishRequest();
  } catch (err) {
    conn.destroy(err instanceof Error ? err : new Error(String(err)));
  } finally {
    reader.releaseLock();
  }
}

const CRLF = new TextEncoder().encode("\r\n");
const LAST_CHUNK = new TextEncoder().encode("0\r\n\r\n");
function CHUNK_PREFIX(n: number): Uint8Array {
  return new TextEncoder().encode(`${n.toString(16)}\r\n`);
}

/**
 * A small HTTP/1.1 client over `node:tls` / `node:net` sockets, one pool per
 * endpoint. It replaces `node:https.request` on the hot path: the node HTTP
 * machinery (ClientRequest, IncomingMessage, agent bookkeeping, the JS
 * parser) cost more per request than the proxying itself. TLS is still
 * `node:tls`, so `servername`, `checkServerIdentity` (the instance id) and the
 * client certificate work exactly as with an https.Agent.
 *
 * Scope: one request at a time per connection (no pipelining), responses
 * framed by Content-Length, chunked encoding or connection close; 1xx interim
 * responses are skipped.
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";

/** How far a request got when it failed. */
export type Phase = "dial" | "handshake" | "sent";

/** Receives one response. Methods, not closures, to keep allocation low. */
export interface H1Handler {
  /** Connection ready (connected and, for TLS, verified): send the body now. */
  onReady(conn: H1Conn): void;
  onHead(status: number, rawHeaders: string[], conn: H1Conn): void;
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  onError(err: Error, phase: Phase, gotResponse: boolean): void;
}

/** Options of a {@linkcode H1Pool}. */
export interface H1PoolOptions {
  host: string;
  port: number;
  /** TLS client options (servername, checkServerIdentity, ca, cert, key); plain when absent. */
  tls: tls.ConnectionOptions | undefined;
  maxIdle: number;
  dialTimeoutMs: number;
  handshakeTimeoutMs: number;
}

function coded(code: string, message: string): Error {
  const e = new Error(message) as Error & { code: string };
  e.code = code;
  return e;
}

const S_HEAD: number = 0;
const S_LENGTH: number = 1;
const S_CHUNK_SIZE: number = 2;
const S_CHUNK_DATA: number = 3;
const S_CHUNK_CRLF: number = 4;
const S_TRAILERS: number = 5;
const S_EOF: number = 6;
const S_IDLE: number = 7;

/** One backend connection. */
export class H1Conn {
  readonly pool: H1Pool;
  readonly socket: net.Socket;
  ready = false;
  phase: Phase = "dial";
  idleSince = 0;
  #handler: H1Handler | undefined;
  #state: number = S_IDLE;
  #head: Buffer | undefined;
  #remaining = 0;
  #reusable = true;
  #noBody = false;
  #requestDone = false;
  #gotResponse = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dead = false;

  constructor(pool: H1Pool, o: H1PoolOptions) {
    this.pool = pool;
    const socket = o.tls
      ? tls.connect({ host: o.host, port: o.port, ...o.tls })
      : net.connect({ host: o.host, port: o.port });
    this.socket = socket;
    socket.setNoDelay(true);
    this.#timer = setTimeout(() => {
      socket.destroy(
        this.phase === "dial"
          ? coded("ERR_ROUTER_DIAL_TIMEOUT", "Dial timed out")
          : coded("ERR_ROUTER_HANDSHAKE_TIMEOUT", "TLS handshake timed out"),
      );
    }, o.dialTimeoutMs);
    socket.once("connect", () => {
      if (!o.tls) return this.#onReady();
      this.phase = "handshake";
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        socket.destroy(
          coded("ERR_ROUTER_HANDSHAKE_TIMEOUT", "TLS handshake timed out"),
        );
      }, o.handshakeTimeoutMs);
    });
    if (o.tls) socket.once("secureConnect", () => this.#onReady());
    socket.on("data", (chunk: Buffer) => {
      try {
        this.#onData(chunk);
      } catch (err) {
        // A bug must not take the router down: fail this exchange only.
        this.#fail(err instanceof Error ? err : new Error(String(err)));
      }
    });
    socket.on("end", () => this.#onEnd());
    socket.on("error", (err: Error) => this.#fail(err));
    socket.on("close", () => {
      this.#dead = true;
      this.pool.forget(this);
      if (this.#handler !== undefined) {
        this.#fail(coded("ECONNRESET", "Backend closed the connection"));
      }
    });
  }

  /** Whether the connection can carry another request. */
  get alive(): boolean {
    return !this.#dead && !this.socket.destroyed;
  }

  /**
   * Starts a request. `head` is the request line and headers, ending with a
   * blank line. The handler's `onReady` fires when the body may be written.
   */
  start(head: string, handler: H1Handler, noBody: boolean): void {
    this.#handler = handler;
    this.#state = S_HEAD;
    this.#head = undefined;
    this.#noBody = noBody;
    this.#requestDone = false;
    this.#gotResponse = false;
    this.#reusable = true;
    this.#pendingHead = head;
    if (this.ready) this.#send();
  }

  #pendingHead: string | undefined;

  #onReady(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.ready = true;
    this.phase = "sent";
    if (this.#handler !== undefined) this.#send();
  }

  #send(): void {
    this.phase = "sent";
    const head = this.#pendingHead!;
    this.#pendingHead = undefined;
    this.socket.write(head, "latin1");
    this.#handler!.onReady(this);
  }

  /** Writes request body bytes; false when the caller should wait for drain. */
  write(chunk: Uint8Array): boolean {
    return this.socket.write(chunk);
  }

  /** Marks the request as fully sent. */
  finishRequest(): void {
    this.#requestDone = true;
  }

  /** Aborts the current exchange and the connection. */
  destroy(err?: Error): void {
    this.#reusable = false;
    this.socket.destroy(err);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  #fail(err: Error): void {
    clearTimeout(this.#timer);
    this.#dead = true;
    const h = this.#handler;
    this.#handler = undefined;
    this.pool.forget(this);
    if (!this.socket.destroyed) this.socket.destroy();
    if (h !== undefined) h.onError(err, this.phase, this.#gotResponse);
  }

  #onEnd(): void {
    if (this.#state === S_EOF && this.#handler !== undefined) {
      this.#reusable = false;
      this.#complete();
      return;
    }
    this.#dead = true;
    if (this.#handler !== undefined) {
      this.#fail(coded("ECONNRESET", "Backend closed the connection"));
    }
  }

  #complete(): void {
    const h = this.#handler!;
    this.#handler = undefined;
    this.#state = S_IDLE;
    const reuse = this.#reusable && this.#requestDone && this.alive;
    if (reuse) this.pool.release(this);
    else this.socket.destroy();
    h.onEnd();
  }

  #onData(chunk: Buffer): void {
    if (this.#handler === undefined) {
      // Bytes while idle: the connection is out of sync.
      this.socket.destroy();
      return;
    }
    let buf: Buffer = chunk;
    while (buf.length > 0 && this.#handler !== undefined) {
      switch (this.#state) {
        case S_HEAD: {
          const prev = this.#head;
          const all = prev === undefined ? buf : Buffer.concat([prev, buf]);
          const end = all.indexOf("\r\n\r\n");
          if (end === -1) {
            if (all.length > 65536) {
              return this.#fail(
                coded("ERR_ROUTER_BAD_RESPONSE", "Response head too large"),
              );
            }
            this.#head = all;
            return;
          }
          this.#head = undefined;
          const rest = all.subarray(end + 4);
          if (!this.#parseHead(all.toString("latin1", 0, end))) {
            return this.#fail(
              coded("ERR_ROUTER_BAD_RESPONSE", "Malformed response head"),
            );
          }
          buf = rest;
          if (this.#handler === undefined) return;
          if (this.#state === S_IDLE) {
            // Complete response without body.
            if (buf.length > 0) this.#reusable = false;
            return this.#complete();
          }
          break;
        }
        case S_LENGTH: {
          const n = Math.min(this.#remaining, buf.length);
          const part = n === buf.length ? buf : buf.subarray(0, n);
          this.#remaining -= n;
          buf = n === buf.length ? EMPTY : buf.subarray(n);
          this.#handler.onData(part);
          if (this.#remaining === 0) {
            if (buf.length > 0) this.#reusable = false;
            return this.#complete();
          }
          break;
        }
        case S_EOF:
          this.#handler.onData(buf);
          return;
        case S_CHUNK_SIZE: {
          const nl = buf.indexOf("\r\n");
          if (nl === -1) {
            this.#head = this.#head === undefined
              ? buf
              : Buffer.concat([this.#head, buf]);
            if (this.#head.length > 1024) {
              return this.#fail(
                coded("ERR_ROUTER_BAD_RESPONSE", "Bad chunk size"),
              );
            }
            return;
          }
          let line = buf.toString("latin1", 0, nl);
          if (this.#head !== undefined) {
            line = this.#head.toString("latin1") + line;
            this.#head = undefined;
          }
          const semi = line.indexOf(";");
          const size = parseInt(semi === -1 ? line : line.slice(0, semi), 16);
          if (!(size >= 0)) {
            return this.#fail(
              coded("ERR_ROUTER_BAD_RESPONSE", "Bad chunk size"),
            );
          }
          buf = buf.subarray(nl + 2);
          if (size === 0) this.#state = S_TRAILERS;
          else {
            this.#remaining = size;
            this.#state = S_CHUNK_DATA;
          }
          break;
        }
        case S_CHUNK_DATA: {
          const n = Math.min(this.#remaining, buf.length);
          const part = n === buf.length ? buf : buf.subarray(0, n);
          this.#remaining -= n;
          buf = n === buf.length ? EMPTY : buf.subarray(n);
          this.#handler.onData(part);
          if (this.#remaining === 0) {
            this.#state = S_CHUNK_CRLF;
            this.#remaining = 2;
          }
          break;
        }
        case S_CHUNK_CRLF: {
          const n = Math.min(this.#remaining, buf.length);
          this.#remaining -= n;
          buf = buf.subarray(n);
          if (this.#remaining === 0) this.#state = S_CHUNK_SIZE;
          break;
        }
        case S_TRAILERS: {
          // Trailer lines end with an empty line; we drop trailers.
          const prev = this.#head;
          const all = prev === undefined ? buf : Buffer.concat([prev, buf]);
          if (all.length >= 2 && all[0] === 13 && all[1] === 10) {
            this.#head = undefined;
            if (all.length > 2) this.#reusable = false;
            return this.#complete();
          }
          const end = all.indexOf("\r\n\r\n");
          if (end === -1) {
            this.#head = all;
            return;
          }
          this.#head = undefined;
          if (all.length > end + 4) this.#reusable = false;
          return this.#complete();
        }
        default:
          this.socket.destroy();
          return;
      }
    }
  }

  /** Parses the status line and headers; sets the body state. */
  #parseHead(text: string): boolean {
    if (!text.startsWith("HTTP/1.")) return false;
    const status = parseInt(text.slice(9, 12), 10);
    if (!(status >= 100 && status <= 999)) return false;
    const raw: string[] = [];
    let length = -1;
    let chunked = false;
    let close = text.charCodeAt(7) === 48; // HTTP/1.0
    let pos = text.indexOf("\r\n");
    while (pos !== -1) {
      const next = text.indexOf("\r\n", pos + 2);
      const line = next === -1
        ? text.slice(pos + 2)
        : text.slice(pos + 2, next);
      pos = next;
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      const len = name.length;
      if (len === 14 || len === 17 || len === 10) {
        const lower = name.toLowerCase();
        if (lower === "content-length") {
          const n = Number(value);
          if (!Number.isSafeInteger(n) || n < 0) return false;
          if (length !== -1 && length !== n) return false;
          length = n;
        } else if (lower === "transfer-encoding") {
          chunked = value.toLowerCase().endsWith("chunked");
        } else if (lower === "connection") {
          close = value.toLowerCase().includes("close");
        }
      }
      raw.push(name, value);
    }
    if (status < 200) {
      // Interim response (100 Continue, 103 Early Hints): wait for the final one.
      this.#state = S_HEAD;
      return true;
    }
    if (close) this.#reusable = false;
    if (chunked && length !== -1) {
      // Both framings: chunked wins (RFC 9112 §6.3); never pass the length on.
      for (let i = raw.length - 2; i >= 0; i -= 2) {
        if (raw[i]!.toLowerCase() === "content-length") raw.splice(i, 2);
      }
      this.#reusable = false;
    }
    this.#gotResponse = true;
    if (this.#noBody || status === 204 || status === 304) this.#state = S_IDLE;
    else if (chunked) this.#state = S_CHUNK_SIZE;
    else if (length >= 0) {
      this.#remaining = length;
      this.#state = length === 0 ? S_IDLE : S_LENGTH;
    } else {
      this.#state = S_EOF;
      this.#reusable = false;
    }
    this.#handler!.onHead(status, raw, this);
    return true;
  }
}

const EMPTY = new Uint8Array(0) as unknown as Buffer;

/** Connections to one endpoint: idle ones are reused last-in first-out. */
export class H1Pool {
  readonly options: H1PoolOptions;
  #idle: H1Conn[] = [];
  #all = new Set<H1Conn>();
  #closed = false;

  constructor(options: H1PoolOptions) {
    this.options = options;
  }

  /** An idle connection, or a new one (connecting). */
  acquire(): H1Conn {
    for (;;) {
      const conn = this.#idle.pop();
      if (conn === undefined) break;
      if (conn.alive) return conn;
    }
    const conn = new H1Conn(this, this.options);
    this.#all.add(conn);
    return conn;
  }

  /** Returns a finished connection for reuse. */
  release(conn: H1Conn): void {
    if (this.#closed || this.#idle.length >= this.options.maxIdle) {
      conn.socket.destroy();
      return;
    }
    conn.idleSince = performance.now();
    this.#idle.push(conn);
  }

  /** Drops a dead connection. */
  forget(conn: H1Conn): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
  }

  /** Closes connections idle for longer than `idleMs`. */
  sweep(now: number, idleMs: number): void {
    for (const conn of [...this.#idle]) {
      if (now - conn.idleSince > idleMs) conn.socket.destroy();
    }
  }

  /** Closes idle connections; busy ones close after their request. */
  retire(): void {
    this.#closed = true;
    for (const conn of this.#idle) conn.socket.destroy();
    this.#idle = [];
  }

  /** Destroys every connection. */
  destroy(): void {
    this.#closed = true;
    for (const conn of this.#all) conn.socket.destroy();
    this.#all.clear();
    this.#idle = [];
  }
}

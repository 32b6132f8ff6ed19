/**
 * The router's client-facing front: a `node:net` (plain) or `node:tls`
 * (HTTPS) server accepts client connections and relays each one, byte for
 * byte, to a private `Deno.serve` on 127.0.0.1 that parses HTTP and runs the
 * handler. `Deno.serve` alone offers no TCP_NODELAY over TLS (a response
 * waits ~40 ms for the client's delayed ACK), no header-read or idle
 * deadline, no connection cap and no 431 above its own 64 KiB head buffer
 * (a bare 400); the front adds them:
 *
 * - TCP_NODELAY on every client socket;
 * - `read_header_timeout`: from accept (TLS handshake included), or from the
 *   first byte of a keep-alive connection's next request, until the handler
 *   receives the request (Go's `ReadHeaderTimeout`);
 * - `idle_timeout`: a keep-alive connection with no request in flight;
 * - `max_connections`: connections over the cap are closed at accept;
 * - a head over `max_header_kb` (or with more than {@linkcode MAX_HEADER_FIELDS}
 *   fields) gets a 431 before the engine sees it. The relay only looks for
 *   the empty line that ends a head, and only while a connection waits for a
 *   new request after a bodiless one; it never parses HTTP.
 *
 * A connection's first head is held in the front until it is complete, so a
 * client that never finishes one costs one file descriptor, not three. The
 * handler is told the client's address (not the relay's), found by the relay
 * connection's local port.
 * @module
 */
import * as net from "node:net";
import * as tls from "node:tls";
import type { Clock, TimerId } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";

/** Header fields a head may carry (the engine refuses 128 and more). */
export const MAX_HEADER_FIELDS = 100;

/** What the front counts, read by the router's metrics. */
export interface FrontCounters {
  /** Client connections open now. */
  clientConnections: number;
  /** Connections closed at accept because `max_connections` were open. */
  clientConnectionsRefused: number;
  /** Connections closed by `read_header_timeout`. */
  clientHeaderTimeouts: number;
  /** Keep-alive connections closed by `idle_timeout`. */
  clientIdleTimeouts: number;
  /** Heads refused with 431 by the front. */
  clientHeadersTooLarge: number;
}

/** Limits of a front (0 turns a limit off). */
export interface FrontLimits {
  readHeaderTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxHeaderBytes: number;
}

/** Options of {@linkcode startFront}. */
export interface FrontOptions {
  hostname: string;
  port: number;
  /** A PEM key pair: serve HTTPS. */
  tls?: { cert: string; key: string };
  reusePort: boolean;
  limits: FrontLimits;
  counters: FrontCounters;
  clock: Clock;
  logger: Logger;
  /** Answers a request whose handler threw (`Deno.serve`'s `onError`). */
  onError: (err: unknown) => Response;
}

/** Handler of a front: the request, its client, and when it was sent. */
export type FrontHandler = (
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/** A started front (a `ClientListener` of `_listeners.ts`). */
export interface ClientFront {
  /** The bound public address. */
  readonly addr: Deno.NetAddr;
  /** Client connections open now. */
  readonly connections: number;
  /** Closes the listening socket only; open connections keep being served. */
  closeListener(): void;
  /** Closes keep-alive connections with no request in flight. */
  closeIdle(): void;
  /**
   * Stops accepting, closes idle connections and each busy one once its
   * requests finish; resolves when no request is in flight.
   */
  stopAccepting(): Promise<void>;
  /** Resolves once stopped and every connection is closed. */
  readonly finished: Promise<void>;
}

/** How long a shut-down front waits for connections to close (real time). */
/** Connections cut per sweep step, and the pause between steps. */
const SWEEP_BATCH = 200;
const SWEEP_BATCH_PAUSE_MS = 5;
const CLOSE_WAIT_MS = 2000;

const IDLE = 0;
const HEAD = 1;
const BUSY = 2;

/** One client connection and its relay. */
class Conn {
  client: net.Socket;
  up: net.Socket | undefined;
  state = HEAD;
  deadline: number;
  inflight = 0;
  upgraded = false;
  /** Scanning for the end of a head (see the module doc). */
  scan = true;
  headBytes = 0;
  headLines = 0;
  lineBytes = 0;
  constructor(
    readonly raw: net.Socket,
    readonly remote: Deno.NetAddr,
    deadline: number,
  ) {
    this.client = raw;
    this.deadline = deadline;
  }

  destroy(): void {
    this.up?.destroy();
    this.client.destroy();
    if (this.client !== this.raw) this.raw.destroy();
  }

  /**
   * Ends the connection once the engine has sent everything: half-closes the
   * relay, so the engine closes its side and the client gets a FIN (or a
   * TLS close_notify) after the last byte.
   */
  end(): void {
    if (this.up === undefined) this.destroy();
    else this.up.end();
  }
}

/**
 * Binds a client front and its private engine.
 *
 * @throws The listen error (`EADDRINUSE`, ...) when the address cannot be bound.
 */
export async function startFront(
  handler: FrontHandler,
  o: FrontOptions,
): Promise<ClientFront> {
  const { limits, counters: n, clock } = o;
  const conns = new Set<Conn>();
  const byRelayPort = new Map<number, Conn>();
  let closing = false;
  let onEmpty: (() => void) | undefined;
  const allClosed = (ms: number) =>
    new Promise<void>((resolve) => {
      if (conns.size === 0) return resolve();
      const t = setTimeout(resolve, ms);
      Deno.unrefTimer(t);
      onEmpty = () => {
        clearTimeout(t);
        resolve();
      };
    });

  const engine = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {}, onError: o.onError },
    async (req, info) => {
      const c = byRelayPort.get(info.remoteAddr.port);
      if (c === undefined) {
        return new Response(
          "403 Forbidden: connect to the router's listener\n",
          { status: 403, headers: { connection: "close" } },
        );
      }
      c.inflight++;
      c.state = BUSY;
      c.scan = false;
      const bodiless = req.body === null;
      info.completed.then(
        () => finished(c, bodiless),
        () => finished(c, false),
      );
      const res = await handler(req, {
        remoteAddr: c.remote,
        completed: info.completed,
      });
      if (res.status === 101) c.upgraded = true;
      return res;
    },
  );
  const enginePort = engine.addr.port;

  const finished = (c: Conn, bodiless: boolean) => {
    // While shutting down, the engine closes the connection after this.
    if (--c.inflight > 0 || c.upgraded || closing) return;
    c.state = IDLE;
    c.deadline = limits.idleTimeoutMs > 0
      ? clock.now() + limits.idleTimeoutMs
      : 0;
    // After a request with a body, the next bytes may be the rest of it.
    c.scan = bodiless;
    c.headBytes = c.headLines = c.lineBytes = 0;
  };

  const tooLarge = (c: Conn) => {
    n.clientHeadersTooLarge++;
    const body = "431 Request Header Fields Too Large\n";
    c.up?.destroy();
    c.client.end(
      `HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  };

  /** Counts head bytes and lines; false when the head is over the limits. */
  const scanHead = (c: Conn, chunk: Uint8Array): boolean => {
    let from = 0;
    for (;;) {
      const lf = chunk.indexOf(10, from);
      if (lf < 0) {
        c.lineBytes += chunk.length - from;
        c.headBytes += chunk.length - from;
        break;
      }
      const len = c.lineBytes + lf - from;
      c.headBytes += lf - from + 1;
      c.lineBytes = 0;
      from = lf + 1;
      if (len <= 1 && (len === 0 || chunk[lf - 1] === 13 || lf === 0)) {
        // An empty line: the end of the head (or a CRLF before a request).
        if (c.headLines > 0) {
          c.scan = false;
          break;
        }
        continue;
      }
      if (++c.headLines > MAX_HEADER_FIELDS + 1) return false;
    }
    return limits.maxHeaderBytes <= 0 || c.headBytes <= limits.maxHeaderBytes;
  };

  /** Connects the relay to the engine and sends it what was held back. */
  const openUp = (c: Conn, held: Uint8Array[]) => {
    const client = c.client;
    const up = c.up = net.connect({ port: enginePort, host: "127.0.0.1" });
    up.setNoDelay(true);
    up.on("connect", () => byRelayPort.set(up.localPort!, c));
    for (const chunk of held) up.write(chunk);
    up.on("drain", () => client.resume());
    up.on("data", (chunk: Uint8Array) => {
      if (!client.write(chunk)) up.pause();
    });
    client.on("drain", () => up.resume());
    up.on("end", () => client.end());
    up.on("error", () => c.destroy());
    up.on("close", () => {
      byRelayPort.delete(up.localPort!);
      if (!client.writableEnded) client.end();
    });
  };

  const relay = (c: Conn, client: net.Socket) => {
    c.client = client;
    client.setNoDelay(true);
    // The first head is held here until complete (at most max_header_kb),
    // so a connection that never sends one costs no engine connection.
    let held: Uint8Array[] | undefined = [];
    client.on("data", (chunk: Uint8Array) => {
      if (c.state === IDLE) {
        c.state = HEAD;
        c.deadline = limits.readHeaderTimeoutMs > 0
          ? clock.now() + limits.readHeaderTimeoutMs
          : 0;
      }
      if (c.scan && !c.upgraded && !scanHead(c, chunk)) {
        tooLarge(c);
        return;
      }
      if (held !== undefined) {
        held.push(chunk);
        if (c.scan) return;
        openUp(c, held);
        held = undefined;
        return;
      }
      if (!c.up!.write(chunk)) client.pause();
    });
    client.on("end", () => {
      if (c.up !== undefined) c.up.end();
      else client.end();
    });
    // Deno 2.9.6: a node:tls server socket never closes after end() otherwise.
    if (client !== c.raw) client.on("finish", () => client.destroy());
    client.on("error", () => c.destroy());
    client.on("close", () => c.up?.destroy());
  };

  const accept = (raw: net.Socket) => {
    if (limits.maxConnections > 0 && conns.size >= limits.maxConnections) {
      n.clientConnectionsRefused++;
      raw.destroy();
      return undefined;
    }
    const c = new Conn(
      raw,
      {
        transport: "tcp",
        hostname: raw.remoteAddress ?? "",
        port: raw.remotePort ?? 0,
      },
      limits.readHeaderTimeoutMs > 0
        ? clock.now() + limits.readHeaderTimeoutMs
        : 0,
    );
    conns.add(c);
    n.clientConnections++;
    raw.on("close", () => {
      conns.delete(c);
      n.clientConnections--;
      if (conns.size === 0) onEmpty?.();
      c.up?.destroy();
    });
    raw.on("error", () => c.destroy());
    return c;
  };

  let server: net.Server;
  if (o.tls) {
    const pending = new Map<string, Conn>();
    const key = (s: net.Socket) => `${s.remoteAddress}:${s.remotePort}`;
    server = tls.createServer({ cert: o.tls.cert, key: o.tls.key });
    server.on("connection", (raw: net.Socket) => {
      raw.setNoDelay(true);
      const c = accept(raw);
      if (c === undefined) return;
      const k = key(raw);
      pending.set(k, c);
      raw.on("close", () => pending.delete(k));
    });
    server.on("secureConnection", (s: tls.TLSSocket) => {
      const k = key(s);
      const c = pending.get(k);
      pending.delete(k);
      if (c === undefined || closing) {
        s.destroy();
        return;
      }
      relay(c, s);
    });
    server.on("tlsClientError", () => {});
  } else {
    server = net.createServer((raw: net.Socket) => {
      const c = accept(raw);
      if (c !== undefined) relay(c, raw);
    });
  }

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(
        {
          host: o.hostname,
          port: o.port,
          ...(o.reusePort ? { reusePort: true } : {}),
        },
        () => {
          server.off("error", reject);
          resolve();
        },
      );
    });
  } catch (err) {
    await engine.shutdown();
    throw err;
  }
  server.on("error", (err) => {
    o.logger.error("client-listener-failed", { error: String(err) });
  });

  // Deadlines are checked by one sweep, not a timer per connection.
  const period = Math.max(
    50,
    Math.min(
      1000,
      ...[limits.readHeaderTimeoutMs, limits.idleTimeoutMs]
        .filter((ms) => ms > 0)
        .map((ms) => ms / 10),
    ),
  );
  let timer: TimerId | undefined;
  const sweep = () => {
    const now = clock.now();
    let cut = 0;
    for (const c of conns) {
      if (c.deadline === 0 || c.state === BUSY || c.upgraded) continue;
      if (now < c.deadline) continue;
      // Thousands due at once (a slowloris wave) are cut in batches with
      // the event loop free between them, so requests in flight and the
      // attackers' reconnects interleave instead of stalling everyone.
      if (cut === SWEEP_BATCH) {
        timer = clock.setTimeout(sweep, SWEEP_BATCH_PAUSE_MS);
        return;
      }
      cut++;
      if (c.state === IDLE) n.clientIdleTimeouts++;
      else n.clientHeaderTimeouts++;
      c.deadline = 0;
      c.destroy();
    }
    timer = clock.setTimeout(sweep, period);
  };
  if (limits.readHeaderTimeoutMs > 0 || limits.idleTimeoutMs > 0) {
    timer = clock.setTimeout(sweep, period);
  }

  const address = server.address() as net.AddressInfo;
  let shutdownP: Promise<void> | undefined;
  let resolveFinished!: () => void;
  const finishedP = new Promise<void>((r) => (resolveFinished = r));
  const front: ClientFront = {
    addr: { transport: "tcp", hostname: address.address, port: address.port },
    get connections() {
      return conns.size;
    },
    closeListener() {
      if (server.listening) server.close();
    },
    closeIdle() {
      for (const c of conns) {
        if (c.inflight === 0 && !c.upgraded) c.end();
      }
    },
    stopAccepting() {
      return shutdownP ??= (async () => {
        closing = true;
        front.closeListener();
        front.closeIdle();
        await engine.shutdown();
        if (timer !== undefined) clock.clearTimeout(timer);
        timer = undefined;
        for (const c of conns) if (!c.upgraded) c.end();
        await engine.finished;
        // WebSocket relays close with their close handshake (the router
        // closes them); whatever is still open after that is cut.
        await allClosed(CLOSE_WAIT_MS);
        for (const c of conns) c.destroy();
        resolveFinished();
      })();
    },
    finished: finishedP,
  };
  return front;
}

/**
 * The Deno.listenTls engine for `mode: tls` listeners: Deno's native TLS
 * (rustls) and a read/write loop per direction. It spends about two thirds
 * of the CPU node:tls spends per handshake (see bench/README.md); it cannot
 * verify client certificates, so `mode: mtls` always runs on node:tls.
 *
 * Deno.listenTls cannot change the certificate of a bound socket. A reload
 * binds a second socket on the same port (SO_REUSEPORT) with the new
 * credentials, then closes the old one. Linux moves connections still
 * waiting in the old socket's accept queue to the new one only when
 * `net.ipv4.tcp_migrate_req = 1`; otherwise they are reset.
 *
 * Deno 2.9.6 runs the handshake of an accepted connection in the background:
 * closing the connection before the handshake ends does not close the
 * socket. A client that stalls its handshake is counted as a refusal at
 * `handshake_timeout` but keeps its socket until it goes away, so this
 * engine is opt-in (`tls_engine: deno`) for ports only trusted clients reach.
 * @module
 */
import {
  describeError,
  UNSTABLE_NET_HINT,
  unstableNetEnabled,
} from "../common/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import { ListenError } from "./errors.ts";
import { TlsListener } from "./_listener.ts";
import type { ListenerOptions, PemContext, TlsEngine } from "./_listener.ts";

/** Bytes read per call, per direction and connection. */
const CHUNK = 16 * 1024;

/** Where Linux keeps the accept-queue migration switch. */
export const MIGRATE_REQ_PATH = "/proc/sys/net/ipv4/tcp_migrate_req";

interface Conn {
  client: Deno.TlsConn;
  app: Deno.TcpConn | undefined;
  peer: string;
  bytesIn: number;
  bytesOut: number;
  lastActive: number;
  cut: boolean;
}

/**
 * A `mode: tls` listener on Deno.listenTls.
 *
 * @example
 * ```ts ignore
 * const l = new DenoTlsListener({ ...options, mode: "tls" });
 * const port = await l.listen();
 * ```
 */
export class DenoTlsListener extends TlsListener {
  readonly engine = "deno";
  #listener: Deno.TlsListener | undefined;
  #conns = new Set<Conn>();
  #handshaking = new Set<Deno.TlsConn>();
  #sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(options: ListenerOptions) {
    super(options);
    if (options.mode !== "tls") {
      throw new TypeError("DenoTlsListener serves mode: tls only");
    }
  }

  get active(): number {
    return this.#conns.size;
  }

  listen(): Promise<number> {
    const { hostname, port } = this.options.listen;
    try {
      // SO_REUSEPORT lets a reload bind the port twice; a plain bind first
      // keeps the usual "address in use" when another process holds it.
      if (port !== 0) Deno.listen({ hostname, port }).close();
      this.#listener = this.#open(port);
    } catch (err) {
      return Promise.reject(this.listenError(err));
    }
    this.boundPort = (this.#listener.addr as Deno.NetAddr).port;
    const idle = this.options.idleTimeoutMs;
    if (idle > 0) {
      const every = Math.min(Math.max(idle / 4, 10), 5000);
      const timer = setInterval(() => this.#sweepIdle(), every);
      Deno.unrefTimer(timer);
      this.#sweeper = timer;
    }
    return Promise.resolve(this.boundPort);
  }

  /**
   * Binds a second socket with the new credentials, then closes the old one.
   *
   * @throws {Error} When the new socket cannot be bound or the PEM is
   *   unusable; the old socket keeps serving then.
   */
  setSecureContext(opts: PemContext): void {
    const old = this.#listener;
    if (this.stopped || old === undefined) return;
    const next = this.#open(this.boundPort, opts);
    this.#listener = next;
    old.close();
  }

  stopAccepting(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      try {
        this.#listener?.close();
      } catch {
        // already closed
      }
    }
    return Promise.resolve();
  }

  destroyAll(): void {
    clearInterval(this.#sweeper);
    for (const c of this.#handshaking) close(c);
    for (const c of this.#conns) this.#cut(c);
  }

  liveBytes(): { in: number; out: number } {
    let i = 0, o = 0;
    for (const c of this.#conns) {
      i += c.bytesIn;
      o += c.bytesOut;
    }
    return { in: i, out: o };
  }

  #open(port: number, pem = this.options.secureContext()): Deno.TlsListener {
    const l = Deno.listenTls({
      hostname: this.options.listen.hostname,
      port,
      cert: pem.cert,
      key: pem.key,
      reusePort: true,
    });
    void this.#accept(l);
    return l;
  }

  async #accept(l: Deno.TlsListener): Promise<void> {
    while (true) {
      let client: Deno.TlsConn;
      try {
        client = await l.accept();
      } catch (err) {
        // Closed on purpose: replaced by a reload, or stopped.
        if (l !== this.#listener || this.stopped) return;
        if (err instanceof Deno.errors.BadResource) return;
        this.options.logger.error("listener-error", {
          ...this.labels,
          error: describeError(err),
        });
        await new Promise((r) => setTimeout(r, 100)); // e.g. out of fds
        continue;
      }
      void this.#serve(client);
    }
  }

  async #serve(client: Deno.TlsConn): Promise<void> {
    const o = this.options;
    const peer = peerOf(client.remoteAddr as Deno.NetAddr);
    this.#handshaking.add(client);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      close(client);
    }, o.handshakeTimeoutMs);
    try {
      await client.handshake();
    } catch (err) {
      this.refused(
        peer,
        "handshake-error",
        timedOut
          ? "TLS handshake timeout (the socket stays open until the client leaves: Deno.listenTls)"
          : describeError(err),
      );
      close(client);
      return;
    } finally {
      clearTimeout(timer);
      this.#handshaking.delete(client);
    }
    const conn: Conn = {
      client,
      app: undefined,
      peer,
      bytesIn: 0,
      bytesOut: 0,
      lastActive: Date.now(),
      cut: false,
    };
    this.#conns.add(conn);
    this.opened();
    conn.app = await this.#dial();
    if (conn.app && !conn.cut) {
      conn.app.setNoDelay(true);
      await Promise.all([
        this.#pump(conn, client, conn.app, true),
        this.#pump(conn, conn.app, client, false),
      ]);
    }
    close(client);
    if (conn.app) close(conn.app);
    this.#conns.delete(conn);
    this.finished(conn.bytesIn, conn.bytesOut);
    this.maybeIdle();
  }

  /** Connects to the app; undefined (counted and logged) when it cannot. */
  async #dial(): Promise<Deno.TcpConn | undefined> {
    const o = this.options;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), o.connectTimeoutMs);
    try {
      return await Deno.connect({
        hostname: o.app.hostname,
        port: o.app.port,
        signal: abort.signal,
      });
    } catch (err) {
      if (abort.signal.aborted) {
        this.appFailed("timeout", `no answer within ${o.connectTimeoutMs}ms`);
      } else {
        this.appFailed(
          err instanceof Deno.errors.ConnectionRefused ? "refused" : "error",
          describeError(err),
        );
      }
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Copies `from` → `to` until EOF, then half-closes `to` (TLS close_notify
   * toward the client). Each write completes before the next read
   * (backpressure). Any error cuts both sides.
   */
  async #pump(
    conn: Conn,
    from: Deno.Conn,
    to: Deno.Conn,
    toApp: boolean,
  ): Promise<void> {
    const buf = new Uint8Array(CHUNK);
    try {
      while (true) {
        const n = await from.read(buf);
        if (n === null) break;
        conn.lastActive = Date.now();
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
        if (toApp) conn.bytesIn += n;
        else conn.bytesOut += n;
      }
      await to.closeWrite();
    } catch {
      this.#cut(conn);
    }
  }

  #cut(conn: Conn): void {
    conn.cut = true;
    close(conn.client);
    if (conn.app) close(conn.app);
  }

  #sweepIdle(): void {
    const limit = Date.now() - this.options.idleTimeoutMs;
    for (const c of this.#conns) {
      if (!c.cut && c.lastActive < limit) {
        this.idleTimedOut(c.peer);
        this.#cut(c);
      }
    }
  }
}

/** Which engine a listener of this instance runs on. */
export interface EngineChoice {
  engine: TlsEngine;
  /** A warning to log: what the Deno engine cannot guarantee here. */
  warning?: string;
}

/**
 * Picks the engine for a listener: `mode: mtls` always runs on node:tls
 * (Deno.listenTls cannot verify client certificates); `mode: tls` runs on
 * the configured `tls_engine`.
 *
 * @param migrateReq The content of {@linkcode MIGRATE_REQ_PATH} (undefined
 *   when unreadable).
 * @throws {ListenError} For `tls_engine: deno` without `--unstable-net`.
 */
export function chooseEngine(
  section: Pick<ProxySection, "tls_engine">,
  mode: "tls" | "mtls",
  migrateReq: string | undefined,
): EngineChoice {
  if (mode === "mtls" || section.tls_engine === "node") {
    return { engine: "node" };
  }
  if (!unstableNetEnabled()) {
    throw new ListenError(
      `Cannot listen: tls_engine "deno" needs Deno's --unstable-net flag (${UNSTABLE_NET_HINT})`,
    );
  }
  const warnings = [
    "a client that never completes its TLS handshake keeps its socket until it leaves (Deno 2.9.6); expose this port to trusted clients only",
  ];
  if (migrateReq?.trim() !== "1") {
    warnings.push(
      `${MIGRATE_REQ_PATH} is not 1, so a credentials reload resets connections still waiting to be accepted: run "sysctl -w net.ipv4.tcp_migrate_req=1" (deploy/sysctl.d/90-sigil.conf)`,
    );
  }
  return { engine: "deno", warning: warnings.join("; ") };
}

function close(c: Deno.Conn): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

function peerOf(a: Deno.NetAddr): string {
  return a.hostname.includes(":")
    ? `[${a.hostname}]:${a.port}`
    : `${a.hostname}:${a.port}`;
}

/**
 * One TLS listener: accepts TLS (node:tls), checks the client in strict mode,
 * and pipes bytes to the app (node:net) with backpressure, half-close, a
 * connect timeout and an idle timeout.
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import type { X509Certificate } from "node:crypto";
import { describeError, describeListenError } from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import type { Address } from "../config/mod.ts";
import { formatAddress } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { ListenError } from "./errors.ts";
import type { ProxyMetrics } from "./_metrics.ts";
import { classifyRefusal, REFUSAL_REASONS, sanAllowed } from "./_peer.ts";
import type { RefusalReason } from "./_peer.ts";

/** What the listener needs from its instance. */
export interface ListenerOptions {
  instance: string;
  name: string;
  listen: Address;
  app: Address;
  mode: "tls" | "mtls";
  minVersion: "TLSv1.2" | "TLSv1.3";
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** The current certificate, key and (mtls) CA bundle. */
  secureContext(): tls.SecureContextOptions;
  /** The current trusted client CAs (mtls). */
  trusted(): readonly X509Certificate[];
  allowedSans: readonly string[];
  /** True when the CA's CRL lists this client serial (mtls). */
  isRevoked?: (serial: string) => boolean;
  clock: Clock;
  logger: Logger;
  metrics: ProxyMetrics;
}

/** Per-listener counters, as served by `/stats`. */
export interface ListenerStats {
  name: string;
  listen: string;
  app: string;
  port: number;
  active: number;
  total: number;
  bytes_client_to_app: number;
  bytes_app_to_client: number;
  handshake_failures: Record<RefusalReason, number>;
  app_connect_failures: { refused: number; timeout: number; error: number };
  idle_timeouts: number;
}

/** Bytes buffered toward the app before the client is paused. */
const APP_WRITE_BUFFER = 1024 * 1024;

interface Conn {
  client: tls.TLSSocket;
  app: net.Socket;
}

/**
 * A TLS listener in front of one app port.
 *
 * @example
 * ```ts ignore
 * const l = new TlsListener({ ...options });
 * const port = await l.listen();
 * ```
 */
export class TlsListener {
  readonly options: ListenerOptions;
  #server: tls.Server;
  #conns = new Set<Conn>();
  #port = 0;
  #closed = false;
  /** Frozen label sets: the metrics registry caches their keys. */
  #labels: Readonly<Record<string, string>>;
  #labelsIn: Readonly<Record<string, string>>;
  #labelsOut: Readonly<Record<string, string>>;
  #stats = {
    total: 0,
    bytesIn: 0,
    bytesOut: 0,
    refusals: Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<
      RefusalReason,
      number
    >,
    appFailures: { refused: 0, timeout: 0, error: 0 },
    idle: 0,
  };
  #idleWaiters = new Set<() => void>();

  constructor(options: ListenerOptions) {
    this.options = options;
    this.#labels = Object.freeze({
      instance: options.instance,
      listener: options.name,
    });
    this.#labelsIn = Object.freeze({
      ...this.#labels,
      direction: "client_to_app",
    });
    this.#labelsOut = Object.freeze({
      ...this.#labels,
      direction: "app_to_client",
    });
    // Counters start at 0 so rate() and alerts see them before the first event.
    const m = options.metrics;
    m.connections.inc(this.#labels, 0);
    m.idleTimeouts.inc(this.#labels, 0);
    m.bytes.inc(this.#labelsIn, 0);
    m.bytes.inc(this.#labelsOut, 0);
    for (const reason of ["refused", "timeout", "error"]) {
      m.appFailures.inc({ ...this.#labels, reason }, 0);
    }
    const mtls = options.mode === "mtls";
    this.#server = tls.createServer({
      ...options.secureContext(),
      minVersion: options.minVersion,
      requestCert: mtls,
      // Strict mode verifies in `#onSecure` so every refusal gets a precise
      // reason; a refused socket is destroyed before the app is dialed.
      rejectUnauthorized: false,
      allowHalfOpen: true,
      handshakeTimeout: options.handshakeTimeoutMs,
    });
    this.#server.on("secureConnection", (s) => this.#onSecure(s));
    this.#server.on("tlsClientError", (err, s) => {
      this.#refuse(s, "handshake-error", describeError(err));
    });
  }

  /** The bound port (0 before {@linkcode TlsListener.listen}). */
  get port(): number {
    return this.#port;
  }

  /** Open client connections. */
  get active(): number {
    return this.#conns.size;
  }

  /**
   * Binds the listen address.
   *
   * @throws {ListenError} When the address cannot be bound.
   */
  listen(): Promise<number> {
    const { hostname, port } = this.options.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        reject(
          new ListenError(
            `Cannot listen on "${
              formatAddress(this.options.listen)
            }" for "${this.options.instance}" (proxy.instances.*.listeners.*.listen): ${
              describeListenError(err)
            }`,
            { cause: err },
          ),
        );
      };
      this.#server.once("error", onError);
      this.#server.listen(port, hostname, () => {
        this.#server.off("error", onError);
        this.#server.on(
          "error",
          (err) =>
            this.options.logger.error("listener-error", {
              ...this.#labels,
              error: describeError(err),
            }),
        );
        this.#port = (this.#server.address() as net.AddressInfo).port;
        resolve(this.#port);
      });
    });
  }

  /** Serves new credentials to new handshakes; live connections keep theirs. */
  setSecureContext(opts: tls.SecureContextOptions): void {
    this.#server.setSecureContext({
      ...opts,
      minVersion: this.options.minVersion,
    });
  }

  #closedPromise: Promise<void> | undefined;

  /** True once {@linkcode TlsListener.stopAccepting} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops accepting new connections; live ones continue. The promise resolves
   * when the server has closed (after the last connection is gone).
   */
  stopAccepting(): Promise<void> {
    if (!this.#closedPromise) {
      this.#closed = true;
      this.#closedPromise = this.#port === 0
        ? Promise.resolve()
        : new Promise((resolve) => this.#server.close(() => resolve()));
    }
    return this.#closedPromise;
  }

  /** Resolves when no connection is open, or after `timeoutMs` (false then). */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.#conns.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#idleWaiters.delete(onIdle);
        resolve(ok);
      };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idleWaiters.add(onIdle);
    });
  }

  /** Cuts every open connection. */
  destroyAll(): void {
    for (const c of this.#conns) {
      c.client.destroy();
      c.app.destroy();
    }
  }

  /**
   * Cuts open connections whose client certificate `isRevoked` now says is
   * revoked (after a CRL reload); returns how many.
   */
  cutRevoked(): number {
    const check = this.options.isRevoked;
    if (!check) return 0;
    let cut = 0;
    for (const c of this.#conns) {
      const serial = c.client.getPeerCertificate()?.serialNumber;
      if (serial && check(serial)) {
        this.options.logger.warn("client-cut-revoked", {
          ...this.#labels,
          peer: peerOf(c.client),
          serial: serial.toLowerCase(),
        });
        c.client.destroy();
        c.app.destroy();
        cut++;
      }
    }
    return cut;
  }

  /** Counters for `/stats`. */
  stats(): ListenerStats {
    const live = this.liveBytes();
    const bytesIn = this.#stats.bytesIn + live.in;
    const bytesOut = this.#stats.bytesOut + live.out;
    return {
      name: this.options.name,
      listen: formatAddress(this.options.listen),
      app: formatAddress(this.options.app),
      port: this.#port,
      active: this.#conns.size,
      total: this.#stats.total,
      bytes_client_to_app: bytesIn,
      bytes_app_to_client: bytesOut,
      handshake_failures: { ...this.#stats.refusals },
      app_connect_failures: { ...this.#stats.appFailures },
      idle_timeouts: this.#stats.idle,
    };
  }

  /** Bytes moved so far on open connections (for metrics). */
  liveBytes(): { in: number; out: number } {
    let i = 0, o = 0;
    for (const c of this.#conns) {
      i += c.app.bytesWritten ?? 0;
      o += c.app.bytesRead ?? 0;
    }
    return { in: i, out: o };
  }

  #refuse(
    s: net.Socket | tls.TLSSocket,
    reason: RefusalReason,
    detail?: string,
    subject?: string,
  ): void {
    this.#stats.refusals[reason]++;
    this.options.metrics.refusals.inc({ ...this.#labels, reason });
    const fields: Record<string, unknown> = {
      ...this.#labels,
      peer: peerOf(s),
      reason,
    };
    if (detail) fields.detail = detail;
    if (subject) fields.client_subject = subject;
    this.options.logger.warn("client-refused", fields);
    s.destroy();
  }

  #onSecure(client: tls.TLSSocket): void {
    const o = this.options;
    if (o.mode === "mtls") {
      if (!client.authorized) {
        const peer = client.getPeerCertificate(true);
        const reason = classifyRefusal(peer, o.trusted(), o.clock.now());
        this.#refuse(
          client,
          reason,
          String(client.authorizationError ?? ""),
          subjectOf(peer),
        );
        return;
      }
      const peer = o.allowedSans.length > 0 || o.isRevoked
        ? client.getPeerCertificate()
        : undefined;
      // Deno 2.9's node:tls ignores the `crl` option: the CRL is checked
      // here, before the app is dialed or a byte is forwarded.
      if (peer && o.isRevoked?.(peer.serialNumber)) {
        this.#refuse(
          client,
          "revoked",
          `client certificate ${peer.serialNumber.toLowerCase()} is listed in the CA's CRL`,
          subjectOf(peer),
        );
        return;
      }
      if (
        peer && o.allowedSans.length > 0 && !sanAllowed(peer, o.allowedSans)
      ) {
        this.#refuse(
          client,
          "san-not-allowed",
          `client SANs: ${peer?.subjectaltname ?? "none"}`,
          subjectOf(peer),
        );
        return;
      }
    }
    this.#forward(client);
  }

  #forward(client: tls.TLSSocket): void {
    const o = this.options;
    const app = net.connect({
      host: o.app.hostname,
      port: o.app.port,
      allowHalfOpen: true,
      // Deno's node:tls loses the client's EOF (half-close) when it arrives
      // while the TLS socket is paused for backpressure; a larger read-ahead
      // toward the app makes such pauses rare. Backpressure still applies.
      writableHighWaterMark: APP_WRITE_BUFFER,
    } as net.NetConnectOpts);
    const conn: Conn = { client, app };
    this.#conns.add(conn);
    this.#stats.total++;
    o.metrics.connections.inc(this.#labels);
    let connected = false;
    const connectTimer = setTimeout(() => {
      if (connected) return;
      this.#appFailed("timeout", `no answer within ${o.connectTimeoutMs}ms`);
      app.destroy();
      client.destroy();
    }, o.connectTimeoutMs);
    app.once("connect", () => {
      connected = true;
      clearTimeout(connectTimer);
      app.setNoDelay(true);
    });
    client.setNoDelay(true);
    client.pipe(app);
    app.pipe(client);
    // Each side is destroyed once both its directions are done. A node:tls
    // server socket in Deno never closes by itself after `end()` (one leaked
    // fd per connection), so this is also the fd-leak workaround.
    closeWhenDone(client);
    closeWhenDone(app);
    client.on("error", () => {
      app.destroy();
      client.destroy();
    });
    app.on("error", (err: NodeJS.ErrnoException) => {
      if (!connected) {
        clearTimeout(connectTimer);
        connected = true;
        this.#appFailed(
          err.code === "ECONNREFUSED" ? "refused" : "error",
          describeError(err),
        );
      }
      client.destroy();
      app.destroy();
    });
    client.on("close", () => {
      // A graceful end is still flushing to the app; anything else is cut.
      if (!app.writableEnded) app.destroy();
    });
    app.on("close", () => {
      if (!client.writableEnded) client.destroy();
      clearTimeout(connectTimer);
      this.#stats.bytesIn += app.bytesWritten ?? 0;
      this.#stats.bytesOut += app.bytesRead ?? 0;
      o.metrics.bytes.inc(this.#labelsIn, app.bytesWritten ?? 0);
      o.metrics.bytes.inc(this.#labelsOut, app.bytesRead ?? 0);
    });
    let remaining = 2;
    const gone = () => {
      if (--remaining > 0) return;
      this.#conns.delete(conn);
      if (this.#conns.size === 0) {
        for (const w of [...this.#idleWaiters]) w();
      }
    };
    client.once("close", gone);
    app.once("close", gone);
    if (o.idleTimeoutMs > 0) {
      client.setTimeout(o.idleTimeoutMs);
      client.on("timeout", () => {
        this.#stats.idle++;
        o.metrics.idleTimeouts.inc(this.#labels);
        o.logger.info("connection-idle-timeout", {
          ...this.#labels,
          peer: peerOf(client),
        });
        client.destroy();
        app.destroy();
      });
    }
  }

  #appFailed(kind: "refused" | "timeout" | "error", detail: string): void {
    this.#stats.appFailures[kind]++;
    this.options.metrics.appFailures.inc({ ...this.#labels, reason: kind });
    this.options.logger.warn("app-connect-failed", {
      ...this.#labels,
      app: formatAddress(this.options.app),
      reason: kind,
      detail,
    });
  }
}

function closeWhenDone(s: net.Socket): void {
  let ended = false, finished = false;
  const check = () => {
    if (ended && finished) s.destroy();
  };
  s.once("end", () => {
    ended = true;
    check();
  });
  s.once("finish", () => {
    finished = true;
    check();
  });
}

function peerOf(s: net.Socket): string {
  const a = s.remoteAddress ?? "unknown";
  return a.includes(":") ? `[${a}]:${s.remotePort}` : `${a}:${s.remotePort}`;
}

function subjectOf(peer: tls.PeerCertificate | undefined): string | undefined {
  const cn = peer?.subject?.CN;
  if (!cn) return undefined;
  return `CN=${Array.isArray(cn) ? cn.join("+") : cn}`;
}

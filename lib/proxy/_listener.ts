/**
 * One TLS listener: accepts TLS, checks the client in strict mode, and pipes
 * bytes to the app with backpressure, half-close, a connect timeout and an
 * idle timeout. {@linkcode TlsListener} holds what every engine shares
 * (counters, refusal and app-failure bookkeeping, drain);
 * {@linkcode NodeTlsListener} is the node:tls engine (every mode; lossless
 * reload with `setSecureContext`); `_deno_listener.ts` is the Deno.listenTls
 * engine for `mode: tls`.
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import type { X509Certificate } from "node:crypto";
import { describeError } from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import type { Address } from "../config/mod.ts";
import { formatAddress } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { ListenError } from "./errors.ts";
import type { ProxyMetrics } from "./_metrics.ts";
import { classifyRefusal, REFUSAL_REASONS, sanAllowed } from "./_peer.ts";
import type { RefusalReason } from "./_peer.ts";

/** Which TLS implementation a listener runs on. */
export type TlsEngine = "node" | "deno";

/** Served credentials as PEM: chain, key, and (mtls) trusted client CAs. */
export interface PemContext {
  cert: string;
  key: string;
  ca?: string;
}

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
  /** The current certificate, key and (mtls) CA bundle, as PEM. */
  secureContext(): PemContext;
  /** The current trusted client CAs (mtls). */
  trusted(): readonly X509Certificate[];
  allowedSans: readonly string[];
  clock: Clock;
  logger: Logger;
  metrics: ProxyMetrics;
}

/** Per-listener counters, as served by `/stats`. */
export interface ListenerStats {
  name: string;
  engine: TlsEngine;
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

/**
 * What every listener engine shares: identity labels, counters, refusal and
 * app-failure bookkeeping, and waiting for the last connection to go.
 */
export abstract class TlsListener {
  readonly options: ListenerOptions;
  abstract readonly engine: TlsEngine;
  /** Frozen label sets: the metrics registry caches their keys. */
  protected readonly labels: Readonly<Record<string, string>>;
  protected readonly labelsIn: Readonly<Record<string, string>>;
  protected readonly labelsOut: Readonly<Record<string, string>>;
  protected boundPort = 0;
  protected stopped = false;
  protected readonly counters = {
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
    this.labels = Object.freeze({
      instance: options.instance,
      listener: options.name,
    });
    this.labelsIn = Object.freeze({
      ...this.labels,
      direction: "client_to_app",
    });
    this.labelsOut = Object.freeze({
      ...this.labels,
      direction: "app_to_client",
    });
  }

  /** The bound port (0 before {@linkcode TlsListener.listen}). */
  get port(): number {
    return this.boundPort;
  }

  /** True once {@linkcode TlsListener.stopAccepting} was called. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Open client connections. */
  abstract get active(): number;

  /**
   * Binds the listen address.
   *
   * @throws {ListenError} When the address cannot be bound.
   */
  abstract listen(): Promise<number>;

  /**
   * Serves new credentials to new handshakes; live connections keep theirs.
   *
   * @throws {Error} When the credentials cannot be used (the old ones stay).
   */
  abstract setSecureContext(opts: PemContext): void;

  /**
   * Stops accepting new connections; live ones continue. The promise resolves
   * when the listening socket is closed.
   */
  abstract stopAccepting(): Promise<void>;

  /** Cuts every open connection. */
  abstract destroyAll(): void;

  /** Bytes moved so far on open connections (for metrics). */
  abstract liveBytes(): { in: number; out: number };

  /** Resolves when no connection is open, or after `timeoutMs` (false then). */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
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

  /** Counters for `/stats`. */
  stats(): ListenerStats {
    const live = this.liveBytes();
    const c = this.counters;
    return {
      name: this.options.name,
      engine: this.engine,
      listen: formatAddress(this.options.listen),
      app: formatAddress(this.options.app),
      port: this.boundPort,
      active: this.active,
      total: c.total,
      bytes_client_to_app: c.bytesIn + live.in,
      bytes_app_to_client: c.bytesOut + live.out,
      handshake_failures: { ...c.refusals },
      app_connect_failures: { ...c.appFailures },
      idle_timeouts: c.idle,
    };
  }

  /** The error for a listen address that cannot be bound. */
  protected listenError(err: unknown): ListenError {
    return new ListenError(
      `Cannot listen on "${
        formatAddress(this.options.listen)
      }" for "${this.options.instance}": ${describeError(err)}`,
      { cause: err },
    );
  }

  /** Counts a connection handed to the app. */
  protected opened(): void {
    this.counters.total++;
    this.options.metrics.connections.inc(this.labels);
  }

  /** Books a finished connection's bytes. */
  protected finished(bytesIn: number, bytesOut: number): void {
    this.counters.bytesIn += bytesIn;
    this.counters.bytesOut += bytesOut;
    this.options.metrics.bytes.inc(this.labelsIn, bytesIn);
    this.options.metrics.bytes.inc(this.labelsOut, bytesOut);
  }

  /** Call after a connection left the open set. */
  protected maybeIdle(): void {
    if (this.active > 0) return;
    for (const w of [...this.#idleWaiters]) w();
  }

  /** Counts and logs a refused client (never its certificate body). */
  protected refused(
    peer: string,
    reason: RefusalReason,
    detail?: string,
    subject?: string,
  ): void {
    this.counters.refusals[reason]++;
    this.options.metrics.refusals.inc({ ...this.labels, reason });
    const fields: Record<string, unknown> = { ...this.labels, peer, reason };
    if (detail) fields.detail = detail;
    if (subject) fields.client_subject = subject;
    this.options.logger.warn("client-refused", fields);
  }

  /** Counts and logs an idle timeout. */
  protected idleTimedOut(peer: string): void {
    this.counters.idle++;
    this.options.metrics.idleTimeouts.inc(this.labels);
    this.options.logger.info("connection-idle-timeout", {
      ...this.labels,
      peer,
    });
  }

  /** Counts and logs a failure to reach the app. */
  protected appFailed(
    kind: "refused" | "timeout" | "error",
    detail: string,
  ): void {
    this.counters.appFailures[kind]++;
    this.options.metrics.appFailures.inc({ ...this.labels, reason: kind });
    this.options.logger.warn("app-connect-failed", {
      ...this.labels,
      app: formatAddress(this.options.app),
      reason: kind,
      detail,
    });
  }
}

interface Conn {
  client: tls.TLSSocket;
  app: net.Socket;
}

/**
 * The node:tls engine: every mode, client-certificate checks with precise
 * refusal reasons, lossless reload with `setSecureContext`.
 *
 * @example
 * ```ts ignore
 * const l = new NodeTlsListener({ ...options });
 * const port = await l.listen();
 * ```
 */
export class NodeTlsListener extends TlsListener {
  readonly engine = "node";
  #server: tls.Server;
  #conns = new Set<Conn>();
  #closedPromise: Promise<void> | undefined;

  constructor(options: ListenerOptions) {
    super(options);
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

  get active(): number {
    return this.#conns.size;
  }

  listen(): Promise<number> {
    const { hostname, port } = this.options.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(this.listenError(err));
      this.#server.once("error", onError);
      this.#server.listen(port, hostname, () => {
        this.#server.off("error", onError);
        this.#server.on(
          "error",
          (err) =>
            this.options.logger.error("listener-error", {
              ...this.labels,
              error: describeError(err),
            }),
        );
        this.boundPort = (this.#server.address() as net.AddressInfo).port;
        resolve(this.boundPort);
      });
    });
  }

  setSecureContext(opts: PemContext): void {
    this.#server.setSecureContext({
      ...opts,
      minVersion: this.options.minVersion,
    });
  }

  stopAccepting(): Promise<void> {
    if (!this.#closedPromise) {
      this.stopped = true;
      this.#closedPromise = this.boundPort === 0
        ? Promise.resolve()
        : new Promise((resolve) => this.#server.close(() => resolve()));
    }
    return this.#closedPromise;
  }

  destroyAll(): void {
    for (const c of this.#conns) {
      c.client.destroy();
      c.app.destroy();
    }
  }

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
    this.refused(peerOf(s), reason, detail, subject);
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
      const peer = o.allowedSans.length > 0
        ? client.getPeerCertificate()
        : undefined;
      if (peer && !sanAllowed(peer, o.allowedSans)) {
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
    this.opened();
    let connected = false;
    const connectTimer = setTimeout(() => {
      if (connected) return;
      this.appFailed("timeout", `no answer within ${o.connectTimeoutMs}ms`);
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
        this.appFailed(
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
      this.finished(app.bytesWritten ?? 0, app.bytesRead ?? 0);
    });
    let remaining = 2;
    const gone = () => {
      if (--remaining > 0) return;
      this.#conns.delete(conn);
      this.maybeIdle();
    };
    client.once("close", gone);
    app.once("close", gone);
    if (o.idleTimeoutMs > 0) {
      client.setTimeout(o.idleTimeoutMs);
      client.on("timeout", () => {
        this.idleTimedOut(peerOf(client));
        client.destroy();
        app.destroy();
      });
    }
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

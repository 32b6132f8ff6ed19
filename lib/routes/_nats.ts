/**
 * The NATS route bus: Cloud Foundry's `router.*` subjects over a real
 * nats-server, for both sides of route registration.
 * @module
 */
import {
  connect as natsConnect,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { type Clock, describeError, systemClock } from "../common/mod.ts";
import type { TimerId } from "../common/mod.ts";
import { createLogger, type Logger } from "../observe/mod.ts";
import {
  parseRegistryMessage,
  parseRouterStartMessage,
  type RegistryMessage,
  RegistryMessageError,
  type RouterStartMessage,
  type RouteSink,
  SUBJECTS,
} from "./_message.ts";
import { RouteBusError } from "./errors.ts";
import { redactUrl } from "../common/mod.ts";

/** Options for {@linkcode NatsRouteBus.connect}. */
export interface NatsRouteBusOptions {
  /** NATS servers, `nats://host:port` (or `tls://host:port`). */
  servers: string[];
  /** Client name shown by the server's monitoring. @default {"sigil"} */
  name?: string;
  /** `id` in `router.start`. @default {"0-" + a random UUID} */
  routerId?: string;
  /** `hosts` in `router.start` (the router's addresses). @default {[]} */
  hosts?: string[];
  /** Advertised register interval in `router.start`. @default {20} */
  minimumRegisterIntervalInSeconds?: number;
  /** Advertised prune threshold in `router.start`. @default {120} */
  pruneThresholdInSeconds?: number;
  /**
   * A valid `router.register` arrived. Setting this (or `onUnregister`) turns on
   * the router side: subscribe to register/unregister, publish `router.start`
   * at start and on every reconnect, answer `router.greet`.
   */
  onRegister?: (message: RegistryMessage) => void;
  /** A valid `router.unregister` arrived. Turns on the router side too. */
  onUnregister?: (message: RegistryMessage) => void;
  /**
   * A message was rejected (`reason`: `invalid-json`, `invalid-message`). The
   * bus already logs rejections (rate-limited); use this to count them.
   */
  onInvalid?: (reason: string, err: Error, subject: string) => void;
  /** Connection state changed: `true` on (re)connect, `false` on loss. */
  onStatus?: (connected: boolean) => void;
  /**
   * Larger `router.register` / `router.unregister` payloads are refused
   * (`too-large`) before they are parsed or logged. @default {65536}
   */
  maxMessageBytes?: number;
  /** TLS to nats-server: trusted CA as PEM text or a file path. */
  tls?: { ca?: string; caFile?: string };
  /** Structured logger. @default {createLogger("routes")} */
  logger?: Logger;
  /** Time source for retry and jitter timers. @default {systemClock} */
  clock?: Clock;
  /** Upper bound of the reconnect backoff. @default {5000} */
  reconnectMaxDelayMs?: number;
  /** Handshake timeout per connection attempt. @default {5000} */
  connectTimeoutMs?: number;
  /** Client ping interval (gorouter fixes 20 s). @default {20000} */
  pingIntervalMs?: number;
  /** Timeout of `register`/`unregister` flushes. @default {5000} */
  publishTimeoutMs?: number;
  /** Random source for jitter (tests). @default {Math.random} */
  random?: () => number;
}

/** Options for {@linkcode NatsRouteBus.onRouterStart}. */
export interface RouterStartListenerOptions {
  /**
   * Delay the callback by a random time in [0, 0.2 × the router's
   * `minimumRegisterIntervalInSeconds`), like Cloud Foundry's route-emitter.
   * @default {true}
   */
  jitter?: boolean;
}

type StartListener = {
  cb: (message: RouterStartMessage) => void;
  jitter: boolean;
};

const MIN_RECONNECT_DELAY_MS = 250;
const INVALID_LOG_INTERVAL_MS = 5000;

/**
 * Route registration over NATS (`router.register`, `router.unregister`,
 * `router.start`, `router.greet`).
 *
 * Router side (when `onRegister`/`onUnregister` is set): subscribes to register
 * and unregister, validates every message with `parseRegistryMessage` (bad
 * ones go to `onInvalid`, never thrown), publishes `router.start` on connect
 * and every reconnect, answers `router.greet`. Proxy side: a
 * {@linkcode RouteSink} publishing JSON, plus `onRouterStart` and `greet`.
 *
 * The bus never gives up: if NATS is down at start, `connect()` still returns
 * and keeps trying with backoff (250 ms up to `reconnectMaxDelayMs`).
 *
 * @example
 * ```ts ignore
 * import { NatsRouteBus } from "./_nats.ts";
 * const router = await NatsRouteBus.connect({
 *   servers: ["nats://127.0.0.1:4222"],
 *   onRegister: (m) => console.log("register", m.uris),
 *   onUnregister: (m) => console.log("unregister", m.uris),
 * });
 * const proxy = await NatsRouteBus.connect({ servers: ["nats://127.0.0.1:4222"] });
 * await proxy.register({ host: "10.0.0.5", tls_port: 61001, uris: ["a.example.com"], server_cert_domain_san: "a1" });
 * await proxy.close();
 * await router.close();
 * ```
 */
export class NatsRouteBus implements RouteSink {
  readonly #opts: NatsRouteBusOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #routerSide: boolean;
  readonly #start: RouterStartMessage;
  readonly #startBytes: string;
  #nc: NatsConnection | undefined;
  #startSub: Subscription | undefined;
  #closed = false;
  #connected: boolean | undefined;
  #attempt = 0;
  #retryTimer: TimerId | undefined;
  #disconnectedAt = 0;
  #jitterFactor = 1;
  #listeners = new Set<StartListener>();
  #jitterTimers = new Set<TimerId>();
  #waiters = new Set<() => void>();
  /** Per log event: when it was last written, how many since were not. */
  #limited = new Map<string, { at: number; suppressed: number }>();
  #received = 0;
  #rejected = 0;

  private constructor(options: NatsRouteBusOptions) {
    if (!options.servers.length) {
      throw new RangeError("Cannot connect to NATS: no servers given");
    }
    this.#opts = options;
    this.#log = options.logger ?? createLogger("routes");
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#routerSide = !!(options.onRegister || options.onUnregister);
    this.#start = {
      id: options.routerId ?? `0-${crypto.randomUUID()}`,
      hosts: options.hosts ?? [],
      minimumRegisterIntervalInSeconds:
        options.minimumRegisterIntervalInSeconds ?? 20,
      pruneThresholdInSeconds: options.pruneThresholdInSeconds ?? 120,
    };
    this.#startBytes = JSON.stringify(this.#start);
  }

  /**
   * Creates a bus and makes the first connection attempt. If NATS is
   * unreachable the bus is still returned (`connected` is false, `onStatus(false)`
   * was called) and keeps retrying in the background.
   *
   * @param options Servers, callbacks and tuning.
   * @returns The bus.
   * @throws {RangeError} when `servers` is empty.
   */
  static async connect(options: NatsRouteBusOptions): Promise<NatsRouteBus> {
    const bus = new NatsRouteBus(options);
    await bus.#tryConnect();
    return bus;
  }

  /** The `router.start` payload this bus publishes (router side). */
  get startMessage(): RouterStartMessage {
    return { ...this.#start, hosts: [...this.#start.hosts] };
  }

  /** Whether the bus is connected to a nats-server now. */
  get connected(): boolean {
    return this.#connected === true;
  }

  /** Counts of register/unregister messages received and rejected. */
  get stats(): { received: number; rejected: number } {
    return { received: this.#received, rejected: this.#rejected };
  }

  /**
   * Resolves once connected (immediately if already).
   *
   * @param timeoutMs Give up after this long. @default {10000}
   * @throws {RouteBusError} `ERR_ROUTES_NATS_UNAVAILABLE` on timeout,
   *   `ERR_ROUTES_BUS_CLOSED` if closed.
   */
  whenConnected(timeoutMs = 10_000): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        if (this.#connected) resolve();
        else reject(closedError());
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(done);
        reject(
          new RouteBusError(
            "ERR_ROUTES_NATS_UNAVAILABLE",
            `Cannot reach NATS: not connected after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(done);
    });
  }

  /**
   * Publishes one `router.register` message and waits until the server has it.
   * @throws {RouteBusError} when closed, disconnected, or the flush times out.
   */
  register(message: RegistryMessage): Promise<void> {
    return this.#publish(SUBJECTS.register, message);
  }

  /**
   * Publishes one `router.unregister` message and waits until the server has it.
   * @throws {RouteBusError} when closed, disconnected, or the flush times out.
   */
  unregister(message: RegistryMessage): Promise<void> {
    return this.#publish(SUBJECTS.unregister, message);
  }

  /**
   * Calls `cb` for every `router.start` a router publishes (proxy side), after
   * a random jitter by default, so a fleet of emitters does not re-register at
   * once.
   *
   * @returns A function that removes the listener.
   */
  onRouterStart(
    cb: (message: RouterStartMessage) => void,
    options: RouterStartListenerOptions = {},
  ): () => void {
    const l: StartListener = { cb, jitter: options.jitter ?? true };
    this.#listeners.add(l);
    if (this.#nc && !this.#startSub) this.#subscribeStart(this.#nc);
    return () => {
      this.#listeners.delete(l);
    };
  }

  /**
   * Asks the routers for their `router.start` payload (`router.greet`).
   *
   * @param timeoutMs How long to wait for the first answer. @default {1000}
   * @returns The first router's answer, or `undefined` when none answers.
   */
  async greet(timeoutMs = 1000): Promise<RouterStartMessage | undefined> {
    const nc = this.#nc;
    if (this.#closed || !nc || !this.#connected) return undefined;
    try {
      const reply = await nc.request(SUBJECTS.greet, "", {
        timeout: timeoutMs,
      });
      return parseRouterStartMessage(reply.data);
    } catch (err) {
      this.#log.debug("router-greet-unanswered", {
        error: describeError(err),
      });
      return undefined;
    }
  }

  /** Stops retrying, closes the NATS connection and cancels pending callbacks. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer !== undefined) {
      this.#clock.clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    for (const t of this.#jitterTimers) this.#clock.clearTimeout(t);
    this.#jitterTimers.clear();
    const nc = this.#nc;
    this.#nc = undefined;
    this.#startSub = undefined;
    if (nc) {
      try {
        await nc.close();
        await nc.closed();
      } catch {
        // already closed
      }
    }
    this.#connected = false;
    for (const w of [...this.#waiters]) w();
    this.#log.info("nats-closed", {});
  }

  async #publish(subject: string, message: RegistryMessage): Promise<void> {
    if (this.#closed) throw closedError();
    const nc = this.#nc;
    if (!nc || !this.#connected) {
      throw new RouteBusError(
        "ERR_ROUTES_NATS_UNAVAILABLE",
        `Cannot publish "${subject}": not connected to NATS`,
      );
    }
    const timeoutMs = this.#opts.publishTimeoutMs ?? 5000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      nc.publish(subject, JSON.stringify(message));
      await Promise.race([
        nc.flush(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new RouteBusError(
                  "ERR_ROUTES_PUBLISH_FAILED",
                  `Cannot publish "${subject}": no acknowledgement from NATS within ${timeoutMs} ms`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      if (err instanceof RouteBusError) throw err;
      throw new RouteBusError(
        "ERR_ROUTES_PUBLISH_FAILED",
        `Cannot publish "${subject}": ${describeError(err)}`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  async #tryConnect(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#closed) return;
    const servers = this.#opts.servers;
    const { urls, auth } = splitCredentials(servers);
    let nc: NatsConnection;
    try {
      nc = await natsConnect({
        servers: urls,
        ...auth,
        name: this.#opts.name ?? "sigil",
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectDelayHandler: () => this.#reconnectDelay(),
        pingInterval: this.#opts.pingIntervalMs ?? 20_000,
        timeout: this.#opts.connectTimeoutMs ?? 5000,
        ...(this.#opts.tls ? { tls: { ...this.#opts.tls } } : {}),
      });
    } catch (err) {
      const delay = Math.min(
        MIN_RECONNECT_DELAY_MS * 2 ** Math.min(this.#attempt, 10),
        this.#opts.reconnectMaxDelayMs ?? 5000,
      );
      this.#attempt++;
      this.#log.warn("nats-connect-failed", {
        servers: servers.map(redactUrl),
        attempt: this.#attempt,
        retry_in_ms: delay,
        error: describeError(err),
      });
      this.#setStatus(false);
      if (!this.#closed) {
        this.#retryTimer = this.#clock.setTimeout(
          () => void this.#tryConnect(),
          delay,
        );
      }
      return;
    }
    if (this.#closed) {
      await nc.close().catch(() => {});
      return;
    }
    this.#attempt = 0;
    this.#nc = nc;
    this.#attach(nc);
    this.#log.info("nats-connected", {
      server: redactUrl(nc.getServer()),
      router_side: this.#routerSide,
    });
    this.#setStatus(true);
    if (this.#routerSide) this.#publishStart(nc);
  }

  #attach(nc: NatsConnection): void {
    if (this.#routerSide) {
      nc.subscribe(SUBJECTS.register, {
        callback: (err, msg) => this.#onRegistry(err, msg, true),
      });
      nc.subscribe(SUBJECTS.unregister, {
        callback: (err, msg) => this.#onRegistry(err, msg, false),
      });
      nc.subscribe(SUBJECTS.greet, {
        callback: (err, msg) => {
          if (err) this.#subscriptionFailed(SUBJECTS.greet, err);
          if (err || !msg.reply) return;
          try {
            msg.respond(this.#startBytes);
          } catch (e) {
            this.#log.warn("router-greet-failed", { error: describeError(e) });
          }
        },
      });
    }
    if (this.#listeners.size) this.#subscribeStart(nc);
    void this.#watchStatus(nc);
    void nc.closed().then((err) => {
      if (this.#nc !== nc || this.#closed) return;
      // The client gave up (e.g. repeated auth errors): start over.
      this.#nc = undefined;
      this.#startSub = undefined;
      this.#log.warn("nats-connection-closed", {
        error: err ? describeError(err) : undefined,
      });
      this.#setStatus(false);
      void this.#tryConnect();
    });
  }

  #subscribeStart(nc: NatsConnection): void {
    this.#startSub = nc.subscribe(SUBJECTS.start, {
      callback: (err, msg) => {
        if (err) {
          this.#subscriptionFailed(SUBJECTS.start, err);
          return;
        }
        let start: RouterStartMessage;
        try {
          start = parseRouterStartMessage(msg.data);
        } catch (e) {
          this.#log.warn("router-start-invalid", { error: describeError(e) });
          return;
        }
        this.#log.info("router-start-received", {
          router: start.id,
          interval_s: start.minimumRegisterIntervalInSeconds,
        });
        for (const l of this.#listeners) this.#notifyStart(l, start);
      },
    });
  }

  #notifyStart(l: StartListener, start: RouterStartMessage): void {
    const call = () => {
      if (this.#closed || !this.#listeners.has(l)) return;
      try {
        l.cb(start);
      } catch (e) {
        this.#log.error("router-start-handler-failed", {
          error: describeError(e),
        });
      }
    };
    if (!l.jitter) return call();
    const delay = Math.floor(
      this.#random() * 0.2 * start.minimumRegisterIntervalInSeconds * 1000,
    );
    const t = this.#clock.setTimeout(() => {
      this.#jitterTimers.delete(t);
      call();
    }, delay);
    this.#jitterTimers.add(t);
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (this.#nc !== nc || this.#closed) return;
        switch (s.type) {
          case "disconnect":
            this.#disconnectedAt = Date.now();
            this.#jitterFactor = 0.75 + this.#random() * 0.5;
            this.#log.warn("nats-disconnected", {
              server: redactUrl(s.server),
            });
            this.#setStatus(false);
            break;
          case "reconnect":
            this.#log.info("nats-reconnected", {
              server: redactUrl(s.server),
            });
            this.#setStatus(true);
            if (this.#routerSide) this.#publishStart(nc);
            break;
          case "error":
            this.#log.warn("nats-error", { error: describeError(s.error) });
            break;
          case "staleConnection":
            this.#log.warn("nats-stale-connection", {});
            break;
          case "slowConsumer":
            this.#log.warn("nats-slow-consumer", { pending: s.pending });
            break;
          default:
            break;
        }
      }
    } catch (err) {
      this.#log.debug("nats-status-ended", { error: describeError(err) });
    }
  }

  #publishStart(nc: NatsConnection): void {
    try {
      nc.publish(SUBJECTS.start, this.#startBytes);
      this.#log.info("router-start-published", { router: this.#start.id });
    } catch (err) {
      this.#log.warn("router-start-publish-failed", {
        error: describeError(err),
      });
    }
  }

  /**
   * A subscription the server ended (typically a permissions violation):
   * NATS does not resubscribe it, so say what to grant.
   */
  #subscriptionFailed(subject: string, err: Error): void {
    this.#log.error("nats-subscription-failed", {
      subject,
      error: describeError(err),
      hint:
        `no more "${subject}" messages arrive on this connection; grant this user subscribe permission on "${subject}" and restart`,
    });
  }

  #reconnectDelay(): number {
    // Time-based backoff: the client calls this on every loop turn, so derive
    // the wait from how long we have been down rather than counting calls.
    const down = Date.now() - (this.#disconnectedAt || Date.now());
    const max = this.#opts.reconnectMaxDelayMs ?? 5000;
    const wait = Math.min(Math.max(MIN_RECONNECT_DELAY_MS, down / 4), max);
    return Math.floor(wait * this.#jitterFactor);
  }

  #onRegistry(err: Error | null, msg: Msg, register: boolean): void {
    const subject = register ? SUBJECTS.register : SUBJECTS.unregister;
    if (err) {
      this.#subscriptionFailed(subject, err);
      return;
    }
    let message: RegistryMessage;
    try {
      const max = this.#opts.maxMessageBytes ?? 65_536;
      if (msg.data.length > max) {
        throw new RegistryMessageError(
          "too-large",
          `Cannot accept registration message: ${msg.data.length} bytes, over the ${max}-byte limit (router.api.max_body_bytes)`,
        );
      }
      message = parseRegistryMessage(
        msg.data,
        (ignored) =>
          this.#logLimited("registry-message-field-ignored", {
            source: "nats",
            subject,
            field: ignored.field,
            detail: ignored.detail,
          }),
      );
    } catch (e) {
      this.#rejected++;
      const error = e instanceof Error ? e : new Error(String(e));
      const reason = e instanceof RegistryMessageError
        ? e.reason
        : "invalid-message";
      this.#logInvalid(subject, reason, error);
      try {
        this.#opts.onInvalid?.(reason, error, subject);
      } catch (he) {
        this.#log.error("route-handler-failed", {
          subject,
          error: describeError(he),
        });
      }
      return;
    }
    this.#received++;
    try {
      if (register) this.#opts.onRegister?.(message);
      else this.#opts.onUnregister?.(message);
    } catch (he) {
      this.#log.error("route-handler-failed", {
        subject,
        error: describeError(he),
      });
    }
  }

  #logInvalid(subject: string, reason: string, err: Error): void {
    this.#logLimited("registry-message-invalid", {
      source: "nats",
      subject,
      reason,
      error: err.message,
    });
  }

  /**
   * A warning at most once per `INVALID_LOG_INTERVAL_MS` per event: a
   * misbehaving emitter on the bus must not flood the log. The next line
   * says how many were left out.
   */
  #logLimited(event: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.#limited.get(event);
    if (last !== undefined && now - last.at < INVALID_LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    this.#log.warn(event, { ...fields, suppressed: last?.suppressed ?? 0 });
    this.#limited.set(event, { at: now, suppressed: 0 });
  }

  #setStatus(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    if (connected) {
      for (const w of [...this.#waiters]) w();
    }
    try {
      this.#opts.onStatus?.(connected);
    } catch (e) {
      this.#log.error("route-handler-failed", {
        subject: "status",
        error: describeError(e),
      });
    }
  }
}

function closedError(): RouteBusError {
  return new RouteBusError(
    "ERR_ROUTES_BUS_CLOSED",
    "Cannot use the route bus: it is closed",
  );
}

/**
 * The NATS client ignores credentials in server URLs: take them out
 * (`user:pass@` → user and pass, a lone `token@` → token) and pass them as
 * options. The first server that carries credentials supplies them.
 */
export function splitCredentials(servers: string[]): {
  urls: string[];
  auth: { user?: string; pass?: string; token?: string };
} {
  let auth: { user?: string; pass?: string; token?: string } = {};
  const urls = servers.map((s) => {
    let u: URL;
    try {
      u = new URL(s.includes("://") ? s : `nats://${s}`);
    } catch {
      return s; // the client reports it
    }
    if (!u.username && !u.password) return s;
    if (auth.user === undefined && auth.token === undefined) {
      const user = decodeURIComponent(u.username);
      auth = u.password
        ? { user, pass: decodeURIComponent(u.password) }
        : { token: user };
    }
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  });
  return { urls, auth };
}

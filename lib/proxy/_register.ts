/**
 * Route registration heartbeat: builds Cloud Foundry `router.register`
 * messages for one instance and sends them to every target on an interval
 * with jitter (the injected clock drives it), and `router.unregister` on stop.
 * @module
 */
import { describeError } from "../common/mod.ts";
import type { Clock, TimerId } from "../common/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { RegistryMessage, RouteSink } from "../routes/mod.ts";
import type { ProxyMetrics } from "./_metrics.ts";

/** A configured `register` block. */
export type RegisterConfig = NonNullable<
  ProxySection["instances"][number]["register"]
>;

/** A named registration target. */
export interface NamedSink {
  /** Shown in logs and metrics (router URL or `nats`). */
  name: string;
  sink: RouteSink;
}

/** What a message is built from. */
export interface MessageInput {
  instanceId: string;
  app?: string;
  tlsPort: number;
  register: RegisterConfig;
}

/**
 * Builds the `router.register` / `router.unregister` message.
 *
 * @example
 * ```ts
 * import { buildRegistryMessage } from "./_register.ts";
 * const m = buildRegistryMessage({ instanceId: "a7c", app: "app-1", tlsPort: 61001, register: { routes: ["hello.example.com"], host: "10.0.0.5", instance_index: "0", tags: {}, interval: 20000, jitter: 0.2, routers: [], tls_listener: 0 } });
 * console.assert(m.server_cert_domain_san === "a7c" && m.tls_port === 61001);
 * ```
 */
export function buildRegistryMessage(input: MessageInput): RegistryMessage {
  const r = input.register;
  const m: RegistryMessage = {
    host: r.host,
    tls_port: input.tlsPort,
    uris: [...r.routes],
    private_instance_id: input.instanceId,
    private_instance_index: r.instance_index,
    server_cert_domain_san: input.instanceId,
    tags: { component: "sigil-proxy", ...r.tags },
  };
  const app = r.app ?? input.app;
  if (app) m.app = app;
  return m;
}

/** Options for {@linkcode RouteRegistrar}. */
export interface RegistrarOptions {
  instance: string;
  message: () => RegistryMessage;
  sinks: NamedSink[];
  intervalMs: number;
  jitter: number;
  clock: Clock;
  random: () => number;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Per-send deadline on unregister at shutdown. @default {2000} */
  unregisterTimeoutMs?: number;
  /**
   * Why the instance must not be registered now (e.g. its certificate
   * expired), or `undefined`. While set, heartbeats send nothing; the first
   * withheld round unregisters, so routers stop choosing it at once.
   */
  withheld?: () => string | undefined;
}

/** Sends an instance's registrations on a heartbeat. */
export class RouteRegistrar {
  #o: RegistrarOptions;
  #timer: TimerId | undefined;
  #stopped = false;
  #inflight = new Set<Promise<void>>();
  #sent = 0;
  #failed = new Map<string, boolean>();
  #withheld = false;

  constructor(options: RegistrarOptions) {
    this.#o = options;
  }

  /** Number of heartbeat rounds sent. */
  get rounds(): number {
    return this.#sent;
  }

  /** Sends the first registration now and schedules the next ones. */
  start(): void {
    this.#round();
  }

  /**
   * Stops the heartbeat, sends `router.unregister` to every target and closes
   * the targets. Never throws; failures are logged.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    await Promise.allSettled([...this.#inflight]);
    const message = this.#o.message();
    const limit = this.#o.unregisterTimeoutMs ?? 2000;
    await Promise.allSettled(
      this.#o.sinks.map((s) => this.#send(s, "unregister", message, limit)),
    );
    await Promise.allSettled(this.#o.sinks.map((s) => s.sink.close()));
  }

  /**
   * Sends a registration to every target now, outside the heartbeat (used
   * when a router announces itself with `router.start`).
   */
  registerNow(): void {
    if (this.#stopped) return;
    this.#sendAll();
  }

  #sendAll(): void {
    const o = this.#o;
    const reason = o.withheld?.();
    if (reason !== undefined) {
      if (this.#withheld) return;
      this.#withheld = true;
      o.logger.warn("routes-withheld", { instance: o.instance, reason });
      this.#sendEach("unregister");
      return;
    }
    if (this.#withheld) {
      this.#withheld = false;
      o.logger.info("routes-resumed", { instance: o.instance });
    }
    this.#sent++;
    this.#sendEach("register");
  }

  #sendEach(action: "register" | "unregister"): void {
    const message = this.#o.message();
    for (const s of this.#o.sinks) {
      const p = this.#send(s, action, message).finally(() =>
        this.#inflight.delete(p)
      );
      this.#inflight.add(p);
    }
  }

  #round(): void {
    if (this.#stopped) return;
    this.#sendAll();
    const o = this.#o;
    const delay = o.intervalMs +
      Math.floor(o.random() * o.jitter * o.intervalMs);
    this.#timer = o.clock.setTimeout(() => this.#round(), delay);
  }

  async #send(
    s: NamedSink,
    action: "register" | "unregister",
    message: RegistryMessage,
    timeoutMs?: number,
  ): Promise<void> {
    const o = this.#o;
    const labels = { instance: o.instance, target: s.name, action };
    try {
      const p = action === "register"
        ? s.sink.register(message)
        : s.sink.unregister(message);
      if (timeoutMs !== undefined) {
        let t: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<never>((_, reject) => {
          t = setTimeout(
            () => reject(new Error(`no answer within ${timeoutMs}ms`)),
            timeoutMs,
          );
        });
        try {
          await Promise.race([p, timeout]);
        } finally {
          clearTimeout(t);
        }
      } else {
        await p;
      }
      o.metrics.registrations.inc({ ...labels, result: "ok" });
      if (action === "register") this.#stamp(s, "ok");
      const wasFailing = this.#failed.get(s.name);
      this.#failed.set(s.name, false);
      const fields = {
        instance: o.instance,
        target: s.name,
        uris: message.uris,
        tls_port: message.tls_port,
      };
      if (action === "unregister") o.logger.info("routes-unregistered", fields);
      else if (wasFailing !== false) o.logger.info("routes-registered", fields);
      else o.logger.debug("routes-registered", fields);
    } catch (err) {
      o.metrics.registrations.inc({ ...labels, result: "error" });
      if (action === "register") this.#stamp(s, "error");
      this.#failed.set(s.name, true);
      o.logger.warn(
        action === "register"
          ? "routes-register-failed"
          : "routes-unregister-failed",
        { instance: o.instance, target: s.name, error: describeError(err) },
      );
    }
  }

  #stamp(s: NamedSink, result: "ok" | "error"): void {
    this.#o.metrics.registrationTimes.set(
      { instance: this.#o.instance, target: s.name, result },
      this.#o.clock.now() / 1000,
    );
  }
}

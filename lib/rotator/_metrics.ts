/**
 * Rotator metrics (absolute timestamps, per instance) and the optional
 * `GET /metrics` listener.
 * @module
 */
import type { Clock } from "../common/mod.ts";
import { describeListenError } from "../common/mod.ts";
import { RotatorError } from "./errors.ts";
import type { Address } from "../config/mod.ts";
import { METRICS_CONTENT_TYPE, MetricsRegistry } from "../observe/mod.ts";
import type { Counter, Gauge, Logger } from "../observe/mod.ts";

/** The per-instance series the rotator publishes. */
export class RotatorMetrics {
  readonly registry: MetricsRegistry;
  #notAfter: Gauge;
  #lastSuccess: Gauge;
  #next: Gauge;
  #consecutive: Gauge;
  #failures: Counter;
  #renewals: Counter;
  #notAfterMs = new Map<string, number>();

  constructor(clock: Clock, registry = new MetricsRegistry("sigil_rotator")) {
    this.registry = registry;
    this.#notAfter = registry.gauge(
      "cert_not_after_timestamp_seconds",
      "Expiry of the current certificate (Unix time)",
    );
    this.#lastSuccess = registry.gauge(
      "last_success_timestamp_seconds",
      "Time of the last successful renewal (Unix time)",
    );
    this.#next = registry.gauge(
      "next_renewal_timestamp_seconds",
      "Time of the next scheduled renewal or retry (Unix time)",
    );
    this.#consecutive = registry.gauge(
      "consecutive_failures",
      "Renewal failures since the last success",
    );
    registry.gauge(
      "cert_expired",
      "1 when the current certificate has expired",
      () =>
        [...this.#notAfterMs].map((
          [instance, ms],
        ) => [{ instance }, clock.now() >= ms ? 1 : 0]),
    );
    this.#failures = registry.counter(
      "renewal_failures_total",
      "Failed renewal attempts",
      [],
    );
    this.#renewals = registry.counter(
      "renewals_total",
      "Successful renewals (new pairs written)",
      [],
    );
  }

  cert(instance: string, notAfterMs: number): void {
    // Counters start at 0 so rate() and alerts work before the first event.
    this.#failures.inc({ instance }, 0);
    this.#renewals.inc({ instance }, 0);
    this.#notAfterMs.set(instance, notAfterMs);
    this.#notAfter.set({ instance }, Math.floor(notAfterMs / 1000));
  }

  success(instance: string, atMs: number): void {
    this.#renewals.inc({ instance });
    this.#lastSuccess.set({ instance }, Math.floor(atMs / 1000));
    this.#consecutive.set({ instance }, 0);
  }

  failure(instance: string, consecutive: number): void {
    this.#failures.inc({ instance });
    this.#consecutive.set({ instance }, consecutive);
  }

  nextRenewal(instance: string, atMs: number): void {
    this.#next.set({ instance }, Math.floor(atMs / 1000));
  }

  /** Drops the gauges of a removed instance (counters keep their totals). */
  forget(instance: string): void {
    this.#notAfterMs.delete(instance);
    for (const g of [this.#notAfter, this.#lastSuccess, this.#next]) {
      g.delete({ instance });
    }
    this.#consecutive.delete({ instance });
  }

  /** Failed attempts so far for one instance. */
  failures(instance: string): number {
    return this.#failures.get({ instance });
  }
}

/** A running metrics listener. */
export interface MetricsServer {
  address: Address;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text) and `GET /healthz`.
 *
 * @example
 * ```ts ignore
 * const srv = await serveMetrics({ hostname: "127.0.0.1", port: 0 }, metrics.registry, log);
 * await srv.close();
 * ```
 */
export async function serveMetrics(
  listen: Address,
  registry: MetricsRegistry,
  log: Logger,
): Promise<MetricsServer> {
  const { promise, resolve } = Promise.withResolvers<Address>();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: listen.hostname,
      port: listen.port,
      onListen: (a) => resolve({ hostname: a.hostname, port: a.port }),
    }, (req) => {
      const path = new URL(req.url).pathname;
      if (req.method !== "GET") {
        return new Response("method not allowed\n", { status: 405 });
      }
      if (path === "/metrics") {
        return new Response(registry.render(), {
          headers: { "content-type": METRICS_CONTENT_TYPE },
        });
      }
      if (path === "/healthz") return new Response("ok\n");
      return new Response("not found\n", { status: 404 });
    });
  } catch (err) {
    throw new RotatorError(
      "ERR_ROTATOR_METRICS_LISTEN",
      `Cannot listen on "${listen.hostname}:${listen.port}" (rotator.metrics_listen): ${
        describeListenError(err)
      }`,
      { cause: err },
    );
  }
  const address = await promise;
  log.info("metrics-listening", {
    address: `${address.hostname}:${address.port}`,
  });
  return { address, close: () => server.shutdown() };
}

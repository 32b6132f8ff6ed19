/** The proxy's Prometheus metrics (prefix `sigil_proxy`). @module */
import { ExpiryWatch, MetricsRegistry } from "../observe/mod.ts";
import type { Counter, ExpiryClock, Gauge, Logger } from "../observe/mod.ts";

type Sample = [Record<string, string>, number];

/** Providers of values computed at scrape time. */
export interface MetricsCollectors {
  active(): Sample[];
  certs(): Array<
    { instance: string; serial: string; notAfter: Date; notBefore: Date }
  >;
  liveBytes(): Sample[];
}

/** All metrics of one proxy process. */
export class ProxyMetrics {
  readonly registry: MetricsRegistry = new MetricsRegistry("sigil_proxy");
  readonly connections: Counter;
  readonly refusals: Counter;
  readonly appFailures: Counter;
  readonly bytes: Counter;
  readonly idleTimeouts: Counter;
  readonly reloads: Counter;
  readonly registrations: Counter;
  /** When a target last accepted / refused a registration (status page). */
  readonly registrationTimes: Gauge;
  readonly active: Gauge;
  #collectors: MetricsCollectors = {
    active: () => [],
    certs: () => [],
    liveBytes: () => [],
  };

  constructor() {
    const r = this.registry;
    this.connections = r.counter(
      "connections_total",
      "Client connections accepted and forwarded to the app",
      [],
    );
    this.active = r.gauge(
      "connections_active",
      "Client connections open now",
      () => this.#collectors.active(),
    );
    this.refusals = r.counter(
      "handshake_failures_total",
      "Client connections refused during the handshake, by reason",
      [],
    );
    this.appFailures = r.counter(
      "app_connect_failures_total",
      "Connections dropped because the app did not accept (refused, timeout, error)",
      [],
    );
    this.bytes = r.counter(
      "bytes_total",
      "Bytes forwarded on closed connections, by direction (client_to_app, app_to_client)",
      [],
    );
    r.gauge(
      "bytes_in_flight",
      "Bytes forwarded so far on open connections, by direction",
      () => this.#collectors.liveBytes(),
    );
    this.idleTimeouts = r.counter(
      "idle_timeouts_total",
      "Connections closed by the idle timeout",
      [],
    );
    this.reloads = r.counter(
      "reloads_total",
      "Credential reload attempts, by what (cert, trust) and result (ok, error)",
      [],
    );
    this.registrations = r.counter(
      "registrations_total",
      "Route registration messages, by target, action and result",
      [],
    );
    this.registrationTimes = r.gauge(
      "registration_last_result_timestamp_seconds",
      "When a registration target last accepted (result ok) or refused (result error) a router.register, as a Unix timestamp",
    );
    r.gauge(
      "cert_not_after_timestamp_seconds",
      "Served certificate notAfter as a Unix timestamp",
      () =>
        this.#collectors.certs().map((
          c,
        ) => [
          { instance: c.instance },
          c.notAfter.getTime() / 1000,
        ]),
    );
    r.gauge(
      "cert_not_before_timestamp_seconds",
      "Served certificate notBefore as a Unix timestamp",
      () =>
        this.#collectors.certs().map((
          c,
        ) => [
          { instance: c.instance },
          c.notBefore.getTime() / 1000,
        ]),
    );
  }

  /**
   * Expiry warnings: instance certificates (their gauge is
   * `cert_not_after_timestamp_seconds`) and router tokens
   * (`router_token_not_after_timestamp_seconds{instance,router}`).
   */
  expiry?: { certs: ExpiryWatch; tokens: ExpiryWatch };

  /** Starts the expiry warnings (they log). */
  watchExpiry(logger: Logger, clock: ExpiryClock): void {
    this.expiry = {
      certs: new ExpiryWatch({
        credential: "instance-cert",
        logger,
        clock,
      }),
      tokens: new ExpiryWatch({
        registry: this.registry,
        name: "router_token_not_after_timestamp_seconds",
        help:
          "Expiry of the bearer token sent to a router's registration API (Unix time)",
        credential: "router-token",
        logger,
        clock,
      }),
    };
  }

  /** Clears the expiry timers. */
  closeExpiry(): void {
    this.expiry?.certs.close();
    this.expiry?.tokens.close();
  }

  /** Installs the scrape-time providers. */
  setCollectors(c: MetricsCollectors): void {
    this.#collectors = c;
  }

  /** Prometheus text. */
  render(): string {
    return this.registry.render();
  }
}

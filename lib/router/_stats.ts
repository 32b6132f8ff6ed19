/**
 * Router metrics. The per-request ones are plain number fields (no label
 * lookups on the hot path) rendered by hand; the rest use the shared
 * {@linkcode MetricsRegistry}.
 * @module
 */
import { DEFAULT_BUCKETS, MetricsRegistry } from "../observe/mod.ts";
import type { Counter } from "../observe/mod.ts";

const PREFIX = "sigil_router";

/** Counters and the latency histogram of the router. */
export class RouterStats {
  readonly registry = new MetricsRegistry(PREFIX);
  /** Requests received on the client listeners. */
  requests = 0;
  /** Responses by status class, index 1..5. */
  readonly responses = [0, 0, 0, 0, 0, 0];
  badGateways = 0;
  backendInvalidId = 0;
  backendInvalidTlsCert = 0;
  backendTlsHandshakeFailed = 0;
  backendExhaustedConns = 0;
  retries = 0;
  websocketUpgrades = 0;
  /** Client connections open now (both fronts; see `_front.ts`). */
  clientConnections = 0;
  clientConnectionsRefused = 0;
  clientHeaderTimeouts = 0;
  clientIdleTimeouts = 0;
  clientHeadersTooLarge = 0;
  websocketFailures = 0;
  readonly latencyBounds = DEFAULT_BUCKETS;
  readonly latencyBuckets: number[] = DEFAULT_BUCKETS.map(() => 0);
  latencySum = 0;
  latencyCount = 0;
  /** `routes_pruned_total{reason}`. */
  readonly routesPruned: Counter;
  /** `registry_messages_total{source,action,result}`. */
  readonly registryMessages: Counter;
  /**
   * Accepted messages by source, `[register, unregister]`, not yet added to
   * {@linkcode registryMessages}: 100k registrations a second would otherwise
   * build a label key per message.
   */
  #accepted = new Map<string, [number, number]>();

  constructor(totals: () => { routes: number; endpoints: number }) {
    this.routesPruned = this.registry.counter(
      "routes_pruned_total",
      "Endpoints removed by reason (stale, probe, identity, untrusted, handshake, dial)",
      ["stale", "probe", "identity", "untrusted", "handshake", "dial"].map(
        (reason) => ({ reason }),
      ),
    );
    this.registryMessages = this.registry.counter(
      "registry_messages_total",
      "Registration messages by source (http, nats), action and result (ok or the rejection reason)",
      [],
    );
    this.registry.gauge(
      "routes",
      "Routes (hostname plus path) in the table",
      () => [[{}, totals().routes]],
    );
    this.registry.gauge(
      "endpoints",
      "Endpoints summed over routes",
      () => [[{}, totals().endpoints]],
    );
  }

  /** Counts one accepted registration message (`result="ok"`). */
  accepted(source: string, action: "register" | "unregister"): void {
    let c = this.#accepted.get(source);
    if (c === undefined) this.#accepted.set(source, c = [0, 0]);
    c[action === "register" ? 0 : 1]++;
  }

  #flushAccepted(): void {
    for (const [source, c] of this.#accepted) {
      if (c[0] > 0) {
        this.registryMessages.inc(
          { source, action: "register", result: "ok" },
          c[0],
        );
      }
      if (c[1] > 0) {
        this.registryMessages.inc(
          { source, action: "unregister", result: "ok" },
          c[1],
        );
      }
      c[0] = c[1] = 0;
    }
  }

  /** Records one finished request. */
  observe(status: number, seconds: number): void {
    const cls = (status / 100) | 0;
    if (cls >= 1 && cls <= 5) this.responses[cls]!++;
    const b = this.latencyBounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]!) {
        this.latencyBuckets[i]!++;
        break;
      }
    }
    this.latencySum += seconds;
    this.latencyCount++;
  }

  /** Prometheus text for everything. */
  render(): string {
    this.#flushAccepted();
    const p = PREFIX;
    const lines: string[] = [];
    const counter = (name: string, help: string, value: number) => {
      lines.push(
        `# HELP ${p}_${name} ${help}`,
        `# TYPE ${p}_${name} counter`,
        `${p}_${name} ${value}`,
      );
    };
    counter("requests_total", "Requests received", this.requests);
    lines.push(
      `# HELP ${p}_responses_total Responses by status class`,
      `# TYPE ${p}_responses_total counter`,
    );
    for (let c = 1; c <= 5; c++) {
      lines.push(`${p}_responses_total{class="${c}xx"} ${this.responses[c]}`);
    }
    counter(
      "bad_gateways_total",
      "Requests that failed on every attempt",
      this.badGateways,
    );
    counter(
      "backend_invalid_id_total",
      "Backends whose certificate did not name the registered instance",
      this.backendInvalidId,
    );
    counter(
      "backend_invalid_tls_cert_total",
      "Backends with an untrusted or expired certificate",
      this.backendInvalidTlsCert,
    );
    counter(
      "backend_tls_handshake_failed_total",
      "Backend TLS handshakes that failed for another reason",
      this.backendTlsHandshakeFailed,
    );
    counter(
      "backend_exhausted_conns_total",
      "Requests refused because every endpoint was at max_conns",
      this.backendExhaustedConns,
    );
    counter(
      "retries_total",
      "Attempts retried on another endpoint",
      this.retries,
    );
    counter(
      "websocket_upgrades_total",
      "WebSocket upgrades passed through",
      this.websocketUpgrades,
    );
    counter(
      "websocket_failures_total",
      "WebSocket upgrades that failed",
      this.websocketFailures,
    );
    lines.push(
      `# HELP ${p}_client_connections Client connections open now`,
      `# TYPE ${p}_client_connections gauge`,
      `${p}_client_connections ${this.clientConnections}`,
    );
    counter(
      "client_connections_refused_total",
      "Client connections closed at accept because max_connections were open",
      this.clientConnectionsRefused,
    );
    lines.push(
      `# HELP ${p}_client_connections_timed_out_total Client connections closed by a deadline (read_header_timeout, idle_timeout)`,
      `# TYPE ${p}_client_connections_timed_out_total counter`,
      `${p}_client_connections_timed_out_total{reason="read_header"} ${this.clientHeaderTimeouts}`,
      `${p}_client_connections_timed_out_total{reason="idle"} ${this.clientIdleTimeouts}`,
    );
    counter(
      "request_headers_too_large_total",
      "Request heads refused with 431 before parsing (over max_header_kb or 100 fields)",
      this.clientHeadersTooLarge,
    );
    const h = `${p}_request_duration_seconds`;
    lines.push(
      `# HELP ${h} Time from request received until the response was complete`,
      `# TYPE ${h} histogram`,
    );
    let cum = 0;
    for (let i = 0; i < this.latencyBounds.length; i++) {
      cum += this.latencyBuckets[i]!;
      lines.push(`${h}_bucket{le="${this.latencyBounds[i]}"} ${cum}`);
    }
    lines.push(
      `${h}_bucket{le="+Inf"} ${this.latencyCount}`,
      `${h}_sum ${this.latencySum}`,
      `${h}_count ${this.latencyCount}`,
    );
    return lines.join("\n") + "\n" + this.registry.render();
  }
}

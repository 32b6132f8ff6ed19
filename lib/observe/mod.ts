/**
 * Observability: structured JSON logs and Prometheus metrics.
 *
 * @example
 * ```ts
 * import { createLogger, MetricsRegistry } from "./mod.ts";
 * const log = createLogger("router", { sink: () => {} });
 * log.info("route-registered", { uri: "hello.localhost" });
 * const m = new MetricsRegistry("sigil_router");
 * m.counter("requests_total", "Requests").inc();
 * ```
 * @module
 */
export { createLogger, silentLogger, stderrSink } from "./log.ts";
export { certWarnAt, ExpiryWatch } from "./expiry.ts";
export type { ExpiryClock, WatchedCredential } from "./expiry.ts";
export type { Logger, LoggerOptions, LogLevel, LogSink } from "./log.ts";
export {
  Counter,
  DEFAULT_BUCKETS,
  Gauge,
  Histogram,
  METRICS_CONTENT_TYPE,
  MetricsRegistry,
} from "./metrics.ts";

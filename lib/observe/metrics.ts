/**
 * A small Prometheus metrics registry: counters, gauges and histograms with
 * labels, rendered in the text exposition format (version 0.0.4). Every
 * registry also renders `sigil_build_info` and the standard `process_*`
 * series, so each role's `/metrics` carries them.
 * @module
 */
import process from "node:process";
import { VERSION } from "../common/version.ts";

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  value: number;
}

interface HistSeries {
  labels: Labels;
  buckets: number[];
  sum: number;
  count: number;
}

/** A monotonically increasing counter. */
export class Counter {
  readonly name: string;
  readonly help: string;
  #series = new Map<string, Series>();

  /**
   * @param initial Label sets rendered at 0 before the first event, so that
   *   `rate()` and alerts see the series from the first scrape.
   */
  constructor(name: string, help: string, initial: Labels[] = [{}]) {
    this.name = name;
    this.help = help;
    for (const labels of initial) this.inc(labels, 0);
  }

  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    const s = this.#series.get(key);
    if (s) s.value += by;
    else this.#series.set(key, { labels, value: by });
  }

  /** Current value for these labels (0 when never incremented). */
  get(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.value ?? 0;
  }

  render(): string {
    return renderSimple(this.name, this.help, "counter", this.#series);
  }
}

/** A value that can go up and down, or be computed on scrape. */
export class Gauge {
  readonly name: string;
  readonly help: string;
  #series = new Map<string, Series>();
  #collect?: () => Array<[Labels, number]>;

  constructor(
    name: string,
    help: string,
    collect?: () => Array<[Labels, number]>,
  ) {
    this.name = name;
    this.help = help;
    this.#collect = collect;
  }

  set(labels: Labels, value: number): void {
    this.#series.set(labelKey(labels), { labels, value });
  }

  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    const s = this.#series.get(key);
    if (s) s.value += by;
    else this.#series.set(key, { labels, value: by });
  }

  dec(labels: Labels = {}, by = 1): void {
    this.inc(labels, -by);
  }

  delete(labels: Labels): void {
    this.#series.delete(labelKey(labels));
  }

  get(labels: Labels = {}): number | undefined {
    return this.#series.get(labelKey(labels))?.value;
  }

  render(): string {
    const series = new Map(this.#series);
    if (this.#collect) {
      for (const [labels, value] of this.#collect()) {
        series.set(labelKey(labels), { labels, value });
      }
    }
    return renderSimple(this.name, this.help, "gauge", series);
  }
}

/** Default latency buckets in seconds. */
export const DEFAULT_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** A histogram of observations (seconds by convention). */
export class Histogram {
  readonly name: string;
  readonly help: string;
  readonly bounds: number[];
  #series = new Map<string, HistSeries>();

  constructor(name: string, help: string, bounds: number[] = DEFAULT_BUCKETS) {
    this.name = name;
    this.help = help;
    this.bounds = bounds;
  }

  observe(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    let s = this.#series.get(key);
    if (!s) {
      s = { labels, buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, s);
    }
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) s.buckets[i]!++;
    }
    s.sum += value;
    s.count++;
  }

  /** Number of observations for these labels. */
  count(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.count ?? 0;
  }

  render(): string {
    const out = [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} histogram`,
    ];
    for (const s of this.#series.values()) {
      for (let i = 0; i < this.bounds.length; i++) {
        out.push(
          `${this.name}_bucket${
            fmtLabels({ ...s.labels, le: String(this.bounds[i]) })
          } ${s.buckets[i]}`,
        );
      }
      out.push(
        `${this.name}_bucket${
          fmtLabels({ ...s.labels, le: "+Inf" })
        } ${s.count}`,
      );
      out.push(`${this.name}_sum${fmtLabels(s.labels)} ${s.sum}`);
      out.push(`${this.name}_count${fmtLabels(s.labels)} ${s.count}`);
    }
    return out.join("\n");
  }
}

type Metric = Counter | Gauge | Histogram;

/**
 * A set of metrics rendered together at `/metrics`.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./metrics.ts";
 * const m = new MetricsRegistry("sigil_ca");
 * const issued = m.counter("issuances_total", "Certificates issued, by result");
 * issued.inc({ result: "ok" });
 * console.assert(m.render().includes('sigil_ca_issuances_total{result="ok"} 1'));
 * ```
 */
export class MetricsRegistry {
  readonly prefix: string;
  #metrics: Metric[] = [];
  #process: boolean;

  /**
   * @param options.process Also render `sigil_build_info` and `process_*`
   *   (default true; false for a registry rendered inside another one).
   */
  constructor(prefix: string, options: { process?: boolean } = {}) {
    this.prefix = prefix;
    this.#process = options.process ?? true;
  }

  /**
   * A counter named `<prefix>_<name>`; `initial` lists the label sets shown at
   * 0 before the first event (default: the series without labels).
   */
  counter(name: string, help: string, initial?: Labels[]): Counter {
    return this.#add(new Counter(`${this.prefix}_${name}`, help, initial));
  }

  gauge(
    name: string,
    help: string,
    collect?: () => Array<[Labels, number]>,
  ): Gauge {
    return this.#add(new Gauge(`${this.prefix}_${name}`, help, collect));
  }

  histogram(name: string, help: string, bounds?: number[]): Histogram {
    return this.#add(new Histogram(`${this.prefix}_${name}`, help, bounds));
  }

  /** The whole registry in Prometheus text format, ending with a newline. */
  render(): string {
    const parts = this.#metrics.map((m) => m.render());
    if (this.#process) parts.push(renderProcessMetrics());
    return parts.join("\n") + "\n";
  }

  #add<T extends Metric>(m: T): T {
    this.#metrics.push(m);
    return m;
  }
}

/** Content type for Prometheus text exposition. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Keys of frozen label objects: hot paths pass the same frozen object. */
const frozenKeys = new WeakMap<Labels, string>();

function labelKey(labels: Labels): string {
  if (!Object.isFrozen(labels)) return buildKey(labels);
  let key = frozenKeys.get(labels);
  if (key === undefined) frozenKeys.set(labels, key = buildKey(labels));
  return key;
}

function buildKey(labels: Labels): string {
  return JSON.stringify(
    Object.entries(labels).sort(([a], [b]) => a < b ? -1 : 1),
  );
}

function fmtLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${
      v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
    }"`
  );
  return parts.length ? `{${parts.join(",")}}` : "";
}

function renderSimple(
  name: string,
  help: string,
  type: string,
  series: Map<string, Series>,
): string {
  const out = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const s of series.values()) {
    out.push(`${name}${fmtLabels(s.labels)} ${s.value}`);
  }
  return out.join("\n");
}

/** When this process started, for `process_start_time_seconds`. */
const startedAt = Date.now() - performance.now();

/**
 * `sigil_build_info` and the `process_*` series of the Prometheus client
 * conventions (CPU, resident memory, heap, open file descriptors, start time).
 */
export function renderProcessMetrics(): string {
  const cpu = process.cpuUsage();
  const mem = Deno.memoryUsage();
  const out = [
    "# HELP sigil_build_info Sigil build; the value is always 1",
    "# TYPE sigil_build_info gauge",
    `sigil_build_info${
      fmtLabels({ version: VERSION, deno: Deno.version.deno })
    } 1`,
    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds",
    "# TYPE process_cpu_seconds_total counter",
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
    "# HELP process_resident_memory_bytes Resident memory size in bytes",
    "# TYPE process_resident_memory_bytes gauge",
    `process_resident_memory_bytes ${mem.rss}`,
    "# HELP process_heap_bytes V8 heap in use in bytes",
    "# TYPE process_heap_bytes gauge",
    `process_heap_bytes ${mem.heapUsed}`,
    "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds",
    "# TYPE process_start_time_seconds gauge",
    `process_start_time_seconds ${Math.floor(startedAt / 1000)}`,
  ];
  const fds = openFds();
  if (fds !== undefined) {
    out.push(
      "# HELP process_open_fds Number of open file descriptors",
      "# TYPE process_open_fds gauge",
      `process_open_fds ${fds}`,
    );
  }
  return out.join("\n");
}

/** Open file descriptors from /proc (Linux); undefined elsewhere. */
function openFds(): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return undefined;
  }
}

/**
 * Structured JSON logging with stable kebab-case event keys.
 *
 * One line per event on stderr (or an injected sink):
 * `{"time":"…","level":"info","component":"ca","event":"cert-issued","instance":"…","serial":"…"}`.
 * Never pass key material, tokens or PEM bodies as fields; identify material by
 * serial or fingerprint.
 * @module
 */
import { redactSecrets } from "../common/mod.ts";

/** Log severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVELS: Record<LogLevel, number> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
};

/** Where log lines go. */
export type LogSink = (line: string) => void;

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Minimum level written. @default {"info"} */
  level?: LogLevel;
  /** Receives each JSON line (without newline). @default {writes to stderr} */
  sink?: LogSink;
  /** Time source. @default {Date.now} */
  now?: () => number;
}

/** A structured logger bound to a component name. */
export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines carry `component` (and the parent's bound fields). */
  child(component: string, fields?: Record<string, unknown>): Logger;
}

const encoder = new TextEncoder();

/** Writes a line to stderr synchronously (so lines are never lost on exit). */
export const stderrSink: LogSink = (line) => {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr closed: nothing sensible to do.
  }
};

/**
 * Creates a logger.
 *
 * @param component Name written in every line (`"ca"`, `"router"`).
 * @param options Level, sink and clock.
 * @returns A {@linkcode Logger}.
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * const lines: string[] = [];
 * const log = createLogger("ca", { sink: (l) => lines.push(l) });
 * log.info("cert-issued", { serial: "0a1b" });
 * console.assert(JSON.parse(lines[0]!).event === "cert-issued");
 * ```
 */
export function createLogger(
  component: string,
  options: LoggerOptions = {},
): Logger {
  const min = LEVELS[options.level ?? "info"];
  const sink = options.sink ?? stderrSink;
  const now = options.now ?? Date.now;
  const make = (bound: Record<string, unknown>): Logger => {
    const write = (
      level: LogLevel,
      event: string,
      fields?: Record<string, unknown>,
    ) => {
      if (LEVELS[level] < min) return;
      const record = {
        time: new Date(now()).toISOString(),
        level,
        ...bound,
        event,
        ...fields,
      };
      sink(JSON.stringify(record, replacer));
    };
    return {
      debug: (e, f) => write("debug", e, f),
      info: (e, f) => write("info", e, f),
      warn: (e, f) => write("warn", e, f),
      error: (e, f) => write("error", e, f),
      child: (c, f) => make({ ...bound, component: c, ...f }),
    };
  };
  return make({ component });
}

// Last line of defence: no field may carry a token or a key, whatever a
// caller passed (a runtime error quoting a header value, a PEM body).
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return redactSecrets(value.message);
  if (typeof value === "string") return redactSecrets(value);
  if (typeof value === "bigint") return value.toString();
  return value;
}

/**
 * A logger that drops everything (for tests and library use).
 *
 * @example
 * ```ts
 * import { silentLogger } from "./log.ts";
 * silentLogger.info("ignored");
 * ```
 */
export const silentLogger: Logger = createLogger("silent", { sink: () => {} });

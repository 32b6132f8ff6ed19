/**
 * Parsing and formatting of human durations such as `"24h"`, `"90s"`, `"1h30m"`.
 * @module
 */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/**
 * Parses a duration string into milliseconds.
 *
 * @param text A duration like `"24h"`, `"90s"`, `"1h30m"`, `"250ms"`, `"7d"`.
 * @returns The duration in milliseconds.
 * @throws {SyntaxError} When the text is not a duration.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * console.assert(parseDuration("1h30m") === 5_400_000);
 * ```
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  let total = 0;
  PART.lastIndex = 0;
  let matched = 0;
  while (PART.lastIndex < s.length) {
    const m = PART.exec(s);
    if (!m) break;
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = PART.lastIndex;
  }
  if (s.length === 0 || matched !== s.length) {
    throw new SyntaxError(
      `Cannot parse duration "${text}": use a number and a unit (ms, s, m, h, d), e.g. "90s" or "24h"`,
    );
  }
  return Math.round(total);
}

/**
 * Formats milliseconds as a compact duration string (`"1h30m"`).
 *
 * @example
 * ```ts
 * import { formatDuration } from "./duration.ts";
 * console.assert(formatDuration(5_400_000) === "1h30m");
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(Math.round(ms));
  let out = "";
  for (
    const [unit, size] of [["h", 3_600_000], ["m", 60_000], [
      "s",
      1_000,
    ]] as const
  ) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return sign + out;
}

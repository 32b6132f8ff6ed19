/**
 * Text helpers shared by the pages, the page script and the CLI tables.
 * @module
 */

/**
 * A duration as people read it: `2d 3h`, `3h 12m`, `4m 05s`, `12s`; a
 * negative one as `-4m 05s`. Self-contained: the page script embeds its
 * source, so it must not call anything else.
 *
 * @example
 * ```ts
 * import { formatSpan } from "./_format.ts";
 * console.assert(formatSpan(3 * 3600_000 + 12 * 60_000) === "3h 12m");
 * console.assert(formatSpan(-65_000) === "-1m 05s");
 * ```
 */
export function formatSpan(ms: number): string {
  const sign = ms < 0 ? "-" : "";
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const two = (n: number) => (n < 10 ? "0" : "") + n;
  if (d > 0) return sign + d + "d " + h + "h";
  if (h > 0) return sign + h + "h " + two(m) + "m";
  if (m > 0) return sign + m + "m " + two(s) + "s";
  return sign + s + "s";
}

/**
 * A byte count with a binary unit.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./_format.ts";
 * console.assert(formatBytes(1536) === "1.5 KiB");
 * ```
 */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * Formats rows as an aligned terminal table (like `kubectl get`): upper-case
 * headers, columns separated by three spaces, no trailing blanks.
 *
 * @example
 * ```ts
 * import { formatTable } from "./_format.ts";
 * const t = formatTable(["route", "state"], [["a.example.com", "healthy"]]);
 * console.assert(t === "ROUTE           STATE\na.example.com   healthy");
 * ```
 */
export function formatTable(headers: string[], rows: string[][]): string {
  const all = [headers.map((h) => h.toUpperCase()), ...rows];
  const widths = headers.map((_, i) =>
    Math.max(...all.map((r) => (r[i] ?? "").length))
  );
  return all.map((r) =>
    r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i]!, " "))
      .join("   ").trimEnd()
  ).join("\n");
}

/** Replaces control characters so attacker-supplied text cannot move the terminal cursor. */
export function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, "?");
}

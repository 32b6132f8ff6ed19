/**
 * fast-check settings shared by the fuzz tests: `SIGIL_FUZZ_RUNS` cases per
 * property (default 150, so `.ci/run` stays fast; `deno task fuzz` runs
 * 5,000), `SIGIL_FUZZ_SEED` to replay a failure (fast-check prints the seed
 * and the shrunk case when a property fails).
 * @module
 */
import fc from "fast-check";

/** Cases per property. */
export const RUNS = Number(Deno.env.get("SIGIL_FUZZ_RUNS") ?? 150);

/** `fc.assert` parameters: `RUNS` cases, or `scale` × `RUNS` for costly ones. */
export function params(scale = 1): fc.Parameters<unknown> {
  const seed = Deno.env.get("SIGIL_FUZZ_SEED");
  return {
    numRuns: Math.max(1, Math.round(RUNS * scale)),
    ...(seed === undefined ? {} : { seed: Number(seed) }),
  };
}

/** Any JSON value, deep and odd: what an attacker or a broken emitter sends. */
export const jsonValue: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 4 });

/** Strings that often break parsers: control bytes, CR/LF, NUL, unicode, long runs. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.constantFrom(
    "",
    " ",
    "\r\n",
    "\u0000",
    "127.0.0.1\r\nX: y",
    "a".repeat(300),
    "*.",
    "..",
    "-a.com",
    "a..b",
    "%00",
    "\u202e",
    "x".repeat(64) + ".com",
  ),
  fc.string({
    unit: fc.constantFrom("a", "-", ".", "*", "_", "/", "?", "1"),
    maxLength: 300,
  }),
);

/**
 * Runs `fn` and fails the property when it takes over `ms` (a parser that
 * backtracks or loops on some input).
 */
export async function bounded<T>(
  what: string,
  fn: () => Promise<T> | T,
  ms = 10_000,
): Promise<T> {
  const t0 = performance.now();
  const out = await fn();
  const took = performance.now() - t0;
  if (took > ms) throw new Error(`${what} took ${Math.round(took)} ms`);
  return out;
}

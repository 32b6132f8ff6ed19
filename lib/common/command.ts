/**
 * The shape of a `sigil` subcommand. Each role exports its commands from its
 * `mod.ts`; `main.ts` parses argv with `node:util` `parseArgs` (strict, so unknown
 * flags are usage errors), prints help from these specs and runs the command.
 * @module
 */

import { UsageError } from "./errors.ts";

/** One flag of a subcommand. */
export interface FlagSpec {
  type: "string" | "boolean";
  /** May be given several times; the value is then a `string[]`. */
  multiple?: boolean;
  short?: string;
  /** Placeholder shown in help, e.g. `DIR`. */
  arg?: string;
  /** One line of help. Mention the default here. */
  description: string;
}

/** Parsed flag values, by flag name. */
export type FlagValues = Record<
  string,
  string | boolean | string[] | undefined
>;

/** A subcommand such as `ca init` or `proxy`. */
export interface Command {
  /** Space-separated words after `sigil`, e.g. `"ca init"`. */
  name: string;
  /** One line for `sigil --help`. */
  summary: string;
  /** Positional arguments shown in usage, e.g. `"FILE"`. Omit when none are taken. */
  positionals?: string;
  flags: Record<string, FlagSpec>;
  /** Runs the command; resolves to the process exit code. */
  run(flags: FlagValues, positionals: string[]): Promise<number>;
}

/**
 * Reads a required string flag.
 *
 * @throws {UsageError} When the flag is missing or empty.
 * @example
 * ```ts
 * import { requireFlag } from "./command.ts";
 * console.assert(requireFlag({ dir: "/x" }, "dir") === "/x");
 * ```
 */
export function requireFlag(flags: FlagValues, name: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "") {
    throw new UsageError(`Missing required flag "--${name}"`);
  }
  return v;
}

/** Reads an optional string flag. */
export function stringFlag(
  flags: FlagValues,
  name: string,
): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

/** Reads a repeatable string flag (empty array when absent). */
export function listFlag(flags: FlagValues, name: string): string[] {
  const v = flags[name];
  if (Array.isArray(v)) return v;
  return typeof v === "string" ? [v] : [];
}

/**
 * Reading and validating a config file: YAML parse (with line numbers), then
 * the zod schema. Validation is pure and happens before any socket is bound or
 * key is read.
 * @module
 */
import { isMap, isPair, isScalar, LineCounter, parseDocument } from "yaml";
import type { Document } from "yaml";
import type { z } from "zod";
import { Config } from "./schema.ts";
import { ConfigError } from "./errors.ts";
import type { ConfigIssue } from "./errors.ts";

/**
 * Parses and validates config text.
 *
 * @param text The YAML text.
 * @param source Name used in messages (usually the file path).
 * @returns The resolved {@linkcode Config}.
 * @throws {ConfigError} Listing every problem with its path and line.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./load.ts";
 * const cfg = parseConfig("ca:\n  dir: /var/lib/sigil/ca\n", "inline");
 * console.assert(cfg.ca?.listen.port === 8443);
 * ```
 */
export function parseConfig(text: string, source = "config"): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
  });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e): ConfigIssue => ({
      path: "(yaml)",
      message: e.message.split("\n")[0]!,
      line: lineCounter.linePos(e.pos[0]).line,
    }));
    throw new ConfigError(
      formatIssues(`Cannot parse "${source}": invalid YAML`, issues),
      issues,
    );
  }
  let raw: unknown;
  try {
    // toJS() resolves aliases: an unknown one, or an alias bomb (billion
    // laughs; the yaml package stops at 100 alias expansions), throws here.
    raw = doc.toJS() ?? {};
  } catch (err) {
    const issues: ConfigIssue[] = [{
      path: "(yaml)",
      message: err instanceof Error ? err.message : String(err),
    }];
    throw new ConfigError(
      formatIssues(`Cannot parse "${source}": invalid YAML`, issues),
      issues,
      { cause: err },
    );
  }
  const result = Config.safeParse(raw);
  if (!result.success) {
    const issues = toIssues(result.error, doc, lineCounter);
    throw new ConfigError(
      formatIssues(`Invalid config "${source}"`, issues),
      issues,
      {
        cause: result.error,
      },
    );
  }
  return result.data;
}

/**
 * Reads, parses and validates a config file.
 *
 * @param path File path.
 * @returns The resolved {@linkcode Config}.
 * @throws {ConfigError} When the file cannot be read or is invalid.
 *
 * @example
 * ```ts ignore
 * import { loadConfig } from "./load.ts";
 * const cfg = await loadConfig("/etc/sigil/sigil.yaml");
 * ```
 */
export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "file not found"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (err as Error).message;
    throw new ConfigError(`Cannot read config "${path}": ${why}`, [], {
      cause: err,
    });
  }
  return parseConfig(text, path);
}

/**
 * Returns a section or throws a {@linkcode ConfigError} naming the command that needs it.
 *
 * @example
 * ```ts
 * import { parseConfig, requireSection } from "./load.ts";
 * const cfg = parseConfig("ca:\n  dir: /tmp/ca\n");
 * console.assert(requireSection(cfg, "ca", "sigil ca serve").dir === "/tmp/ca");
 * ```
 */
export function requireSection<K extends keyof Config>(
  config: Config,
  key: K,
  command: string,
): NonNullable<Config[K]> {
  const section = config[key];
  if (section === undefined) {
    throw new ConfigError(
      `Invalid config: section "${key}" is missing; ${command} needs it (see config.example.yaml)`,
      [{ path: key, message: "section is missing" }],
    );
  }
  return section as NonNullable<Config[K]>;
}

function formatIssues(head: string, issues: ConfigIssue[]): string {
  const lines = issues.map((i) =>
    `  ${i.path}: ${i.message}${
      i.line !== undefined ? ` (line ${i.line})` : ""
    }`
  );
  return `${head}:\n${lines.join("\n")}`;
}

function toIssues(
  error: z.ZodError,
  doc: Document,
  lc: LineCounter,
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path.map((p) => String(p));
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({
          path: [...path, key].join("."),
          message:
            "unrecognized key (check the spelling; see config.example.yaml)",
          line: lineOf(doc, lc, [...path, key], true),
        });
      }
      continue;
    }
    const missing = issue.code === "invalid_type" &&
      /received undefined$/.test(issue.message);
    out.push({
      path: path.length ? path.join(".") : "(root)",
      message: missing
        ? `required: this key is missing (expected ${
          (issue as { expected?: string }).expected ?? "a value"
        })`
        : lowerFirst(issue.message),
      line: lineOf(doc, lc, path, false),
    });
  }
  return out;
}

function lineOf(
  doc: Document,
  lc: LineCounter,
  path: string[],
  keyNode: boolean,
) {
  // Walk down to the deepest node that exists, so a missing key reports its parent.
  let node: unknown = doc.contents;
  let best: number | undefined = rangeStart(node);
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (
      !isMap(node) && !(node && typeof node === "object" && "items" in node)
    ) break;
    const items = (node as { items: unknown[] }).items;
    let next: unknown;
    if (isMap(node)) {
      const pair = items.find((p) =>
        isPair(p) && isScalar(p.key) && String(p.key.value) === seg
      );
      if (!pair || !isPair(pair)) break;
      if (keyNode && i === path.length - 1) next = pair.key;
      else next = pair.value ?? pair.key;
    } else {
      next = items[Number(seg)];
    }
    if (next === undefined || next === null) break;
    node = next;
    best = rangeStart(node) ?? best;
  }
  return best === undefined ? undefined : lc.linePos(best).line;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? range[0] : undefined;
}

function lowerFirst(s: string): string {
  return s.length > 1 && /[A-Z][a-z]/.test(s.slice(0, 2))
    ? s[0]!.toLowerCase() + s.slice(1)
    : s;
}

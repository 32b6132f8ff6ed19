/**
 * The `sigil` command line: parse argv, pick the subcommand, map known errors
 * to exit codes (0 ok, 1 runtime failure, 2 usage or config error).
 * @module
 */
import { parseArgs } from "node:util";
import type { ParseArgsOptionsConfig } from "node:util";
import {
  ApplianceError,
  describeError,
  redactSecrets,
  UsageError,
} from "./lib/common/mod.ts";
import type { Command, FlagValues } from "./lib/common/mod.ts";
import { ConfigError } from "./lib/config/mod.ts";
import { COMMANDS, VERSION } from "./lib/cli.ts";
import { createLogger } from "./lib/observe/mod.ts";

/** Roles that log JSON lines: their startup failures are JSON lines too. */
const JSON_LOGGING = new Set([
  "ca serve",
  "rotator",
  "proxy",
  "router",
  "credhub",
]);
/** The command being run (for how a failure is reported). */
let current: Command | undefined;

function findCommand(args: string[]): [Command, string[]] | undefined {
  let best: Command | undefined;
  for (const cmd of COMMANDS) {
    const words = cmd.name.split(" ");
    if (
      words.every((w, i) => args[i] === w) &&
      (!best || words.length > best.name.split(" ").length)
    ) {
      best = cmd;
    }
  }
  return best ? [best, args.slice(best.name.split(" ").length)] : undefined;
}

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = [
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${"version".padEnd(width)}  Print the version of sigil and Deno`,
  ];
  return [
    `sigil ${VERSION}: short-lived X.509 identities for app instances, and a router that verifies them`,
    "",
    "Usage: sigil <command> [flags]",
    "",
    "Commands:",
    ...lines,
    "",
    "Run 'sigil <command> --help' for the flags of a command.",
  ].join("\n");
}

function commandHelp(cmd: Command): string {
  const flags = Object.entries(cmd.flags).map(([name, f]) => {
    const arg = f.type === "string" ? ` ${f.arg ?? "VALUE"}` : "";
    const short = f.short ? `-${f.short}, ` : "    ";
    const rep = f.multiple ? " (repeatable)" : "";
    return `  ${short}--${name}${arg}\n        ${f.description}${rep}`;
  });
  return [
    `Usage: sigil ${cmd.name} [flags]${
      cmd.positionals ? " " + cmd.positionals : ""
    }`,
    "",
    cmd.summary,
    "",
    "Flags:",
    ...flags,
    "  -h, --help\n        Show this help",
  ].join("\n");
}

async function main(args: string[]): Promise<number> {
  if (
    args.length === 0 || args[0] === "--help" || args[0] === "-h" ||
    args[0] === "help"
  ) {
    console.log(usage());
    return args.length === 0 ? 2 : 0;
  }
  if (args[0] === "version" || args[0] === "--version") {
    console.log(`sigil ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  const found = findCommand(args);
  // `sigil ca` or `sigil ca --help`: the commands of that group.
  const group = COMMANDS.filter((c) => c.name.startsWith(`${args[0]} `));
  if (
    group.length > 0 && !found &&
    (args.length === 1 || args[1] === "--help" || args[1] === "-h")
  ) {
    const width = Math.max(...group.map((c) => c.name.length));
    console.log(
      [
        `Commands of sigil ${args[0]}:`,
        ...group.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
        "",
        `Run 'sigil ${args[0]} <command> --help' for its flags.`,
      ].join("\n"),
    );
    return args.length === 1 ? 2 : 0;
  }
  if (!found) {
    throw new UsageError(
      `Unknown command "${args.join(" ")}": run 'sigil --help' for the list`,
    );
  }
  const [cmd, rest] = found;
  current = cmd;
  const options: ParseArgsOptionsConfig = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, f] of Object.entries(cmd.flags)) {
    options[name] = f.short
      ? { type: f.type, multiple: f.multiple ?? false, short: f.short }
      : { type: f.type, multiple: f.multiple ?? false };
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options,
      strict: true,
      allowPositionals: !!cmd.positionals,
    });
  } catch (err) {
    throw new UsageError(
      `Invalid arguments for "sigil ${cmd.name}": ${describeError(err)}`,
      {
        cause: err,
      },
    );
  }
  if (parsed.values.help) {
    console.log(commandHelp(cmd));
    return 0;
  }
  return await cmd.run(parsed.values as FlagValues, parsed.positionals);
}

/** Errors about a file or directory the user named (the message has the path). */
const FILE_ERRORS = [
  Deno.errors.PermissionDenied,
  Deno.errors.NotFound,
  Deno.errors.AlreadyExists,
  Deno.errors.NotADirectory,
  Deno.errors.IsADirectory,
];

/** Prints a failure: a JSON log line for the JSON-logging roles, else `sigil: ...`. */
function report(err: unknown, detail?: string): void {
  // Same redaction as log lines: a runtime message can carry a header value.
  const message = redactSecrets(
    (err instanceof Error ? err.message : String(err)) + (detail ?? ""),
  );
  if (current && JSON_LOGGING.has(current.name)) {
    createLogger(current.name.split(" ")[0]!).error("start-failed", {
      code: err instanceof ApplianceError ? err.code : (err as Error)?.name,
      error: message,
    });
  } else {
    console.error(`sigil: ${message}`);
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      report(err);
      code = 2;
    } else if (err instanceof ApplianceError) {
      report(err);
      code = 1;
    } else if (FILE_ERRORS.some((E) => err instanceof E)) {
      // A file or directory the user named: Deno's message carries the path.
      report(err, " (check the path and that this user may use it)");
      code = 1;
    } else if (Deno.env.get("SIGIL_DEBUG")) {
      throw err;
    } else {
      // Not an operator mistake we know: one line, no stack trace
      // (SIGIL_DEBUG=1 shows it).
      report(
        err,
        " (unexpected error; run with SIGIL_DEBUG=1 for a stack trace and report it)",
      );
      code = 1;
    }
  }
  Deno.exit(code);
}

/** `sigil proxy` subcommands. @module */
import type { Command } from "../common/mod.ts";

/** Commands of the proxy role. */
export const PROXY_COMMANDS: Command[] = [];

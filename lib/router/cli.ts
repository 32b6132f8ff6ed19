/** `sigil router` subcommands. @module */
import type { Command } from "../common/mod.ts";

/** Commands of the router role. */
export const ROUTER_COMMANDS: Command[] = [];

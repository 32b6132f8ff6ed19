/** `sigil dev` subcommands. @module */
import type { Command } from "../common/mod.ts";

/** Commands of the dev role. */
export const DEV_COMMANDS: Command[] = [];

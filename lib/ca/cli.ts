/** `sigil ca` subcommands. @module */
import type { Command } from "../common/mod.ts";

/** Commands of the ca role. */
export const CA_COMMANDS: Command[] = [];

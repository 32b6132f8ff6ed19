/** `sigil rotator` subcommands. @module */
import type { Command } from "../common/mod.ts";

/** Commands of the rotator role. */
export const ROTATOR_COMMANDS: Command[] = [];

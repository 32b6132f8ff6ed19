/**
 * The list of `sigil` subcommands, gathered from each role's `cli.ts`.
 * @module
 */
import type { Command } from "./common/mod.ts";
import { CONFIG_COMMANDS } from "./config/cli.ts";
import { CA_COMMANDS } from "./ca/cli.ts";
import { ROTATOR_COMMANDS } from "./rotator/cli.ts";
import { PROXY_COMMANDS } from "./proxy/cli.ts";
import { ROUTER_COMMANDS } from "./router/cli.ts";
import { DEV_COMMANDS } from "./dev/cli.ts";
import { CREDHUB_COMMANDS } from "./credhub/cli.ts";
import { CREDHUB_CLIENT_COMMANDS } from "./credhub/_clients_cli.ts";
import { LAUNCH_COMMANDS } from "./launch/mod.ts";
import { STATUS_COMMANDS } from "./status/cli.ts";

export { VERSION } from "./common/mod.ts";

/** Every subcommand, in help order. */
export const COMMANDS: Command[] = [
  ...DEV_COMMANDS,
  ...CA_COMMANDS,
  ...ROTATOR_COMMANDS,
  ...PROXY_COMMANDS,
  ...ROUTER_COMMANDS,
  ...CREDHUB_COMMANDS,
  ...CREDHUB_CLIENT_COMMANDS,
  ...LAUNCH_COMMANDS,
  ...STATUS_COMMANDS,
  ...CONFIG_COMMANDS,
];

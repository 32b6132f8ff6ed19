/** `sigil router` subcommands. @module */
import type { Command } from "../common/mod.ts";
import {
  describeError,
  requireFlag,
  systemdNotifier,
  watchSignals,
} from "../common/mod.ts";
import { loadConfig, requireSection } from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";
import { startRouter } from "./_router.ts";

/** Commands of the router role. */
export const ROUTER_COMMANDS: Command[] = [{
  name: "router",
  summary:
    "Route HTTP by Host to registered instances, verifying each backend's instance identity",
  flags: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      description: "Config file with a router section (required)",
    },
  },
  async run(flags) {
    const file = requireFlag(flags, "config");
    const config = requireSection(
      await loadConfig(file),
      "router",
      "sigil router",
    );
    const logger = createLogger("router", { level: config.log_level });
    const signals = watchSignals();
    try {
      const router = await startRouter(config, { logger });
      const notify = systemdNotifier({ logger });
      await notify.ready();
      signals.onReload(() => {
        router.reload().catch((err) =>
          logger.error("reload-failed", { error: describeError(err) })
        );
      });
      const signal = await signals.stopped;
      logger.info("signal-received", { signal });
      await notify.stopping();
      try {
        await router.drain();
        await notify.close();
        return 0;
      } catch (err) {
        logger.error("drain-failed", { error: describeError(err) });
        return 1;
      }
    } finally {
      signals.release();
    }
  },
}];

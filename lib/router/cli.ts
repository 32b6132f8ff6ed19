/** `sigil router` subcommands. @module */
import type { Command } from "../common/mod.ts";
import { describeError, requireFlag } from "../common/mod.ts";
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
    const router = await startRouter(config, { logger });
    let stopping: Promise<void> | undefined;
    const done = Promise.withResolvers<number>();
    const stop = (signal: string) => {
      if (stopping) return;
      logger.info("signal-received", { signal });
      stopping = router.drain().then(() => done.resolve(0), (err) => {
        logger.error("drain-failed", { error: describeError(err) });
        done.resolve(1);
      });
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    const onHup = () => {
      router.reload().catch((err) =>
        logger.error("reload-failed", { error: describeError(err) })
      );
    };
    Deno.addSignalListener("SIGTERM", onTerm);
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGHUP", onHup);
    const code = await done.promise;
    // The SIGTERM/SIGINT listeners stay installed until the process exits:
    // a repeated signal while it shuts down is ignored instead of killing it
    // with status 143.
    Deno.removeSignalListener("SIGHUP", onHup);
    return code;
  },
}];

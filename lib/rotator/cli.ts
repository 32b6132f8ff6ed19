/** `sigil rotator` subcommands. @module */
import type { Command } from "../common/mod.ts";
import {
  describeError,
  requireFlag,
  systemdNotifier,
  watchSignals,
} from "../common/mod.ts";
import { loadConfig, requireSection } from "../config/mod.ts";
import type { RotatorSection } from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";

const COMMAND = "sigil rotator";

async function loadSection(path: string): Promise<RotatorSection> {
  return requireSection(await loadConfig(path), "rotator", COMMAND);
}

/** Commands of the rotator role. */
export const ROTATOR_COMMANDS: Command[] = [{
  name: "rotator",
  summary:
    "Keep each instance's key and certificate fresh, atomically, through CA outages",
  flags: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      description: "Config file with a rotator section (required)",
    },
    once: {
      type: "boolean",
      description:
        "Issue what is missing or due, then exit: 0 also when nothing was due, 1 when something due could not be renewed",
    },
  },
  async run(flags) {
    const path = requireFlag(flags, "config");
    const section = await loadSection(path);
    // Loaded here so other subcommands do not pay for the rotator's modules.
    const { runOnce, startRotator } = await import("./_rotator.ts");
    const log = createLogger("rotator", { level: section.log_level });
    if (flags.once) {
      const result = await runOnce(section, { logger: log });
      return result.failed.length > 0 ? 1 : 0;
    }
    const signals = watchSignals();
    try {
      const rotator = await startRotator(section, { logger: log });
      const notify = systemdNotifier({ logger: log });
      await notify.ready();
      signals.onReload(() => {
        log.info("signal-received", { signal: "SIGHUP" });
        void (async () => {
          try {
            await rotator.reload(await loadSection(path));
          } catch (err) {
            log.error("config-reload-failed", { error: describeError(err) });
          }
          await rotator.renewAll();
        })();
      });
      const signal = await signals.stopped;
      log.info("signal-received", { signal });
      await notify.stopping();
      await rotator.close();
      await notify.close();
      return 0;
    } finally {
      signals.release();
    }
  },
}];

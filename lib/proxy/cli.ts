/** `sigil proxy`: run the TLS proxy until SIGTERM/SIGINT; SIGHUP reloads. @module */
import type { Command } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import { requireFlag, watchSignals } from "../common/mod.ts";
import { loadConfig, requireSection } from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";
import { startProxy } from "./_proxy.ts";

/** Commands of the proxy role. */
export const PROXY_COMMANDS: Command[] = [{
  name: "proxy",
  summary:
    "Terminate TLS (or mTLS) for app instances, hot-reload their certificates, register routes",
  flags: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      description: "Config file with a proxy section",
    },
  },
  async run(flags) {
    const file = requireFlag(flags, "config");
    const section = requireSection(
      await loadConfig(file),
      "proxy",
      "sigil proxy",
    );
    const logger = createLogger("proxy", { level: section.log_level });
    const signals = watchSignals();
    try {
      const proxy = await startProxy(section, { logger });
      signals.onReload(() => {
        logger.info("reload-requested", { signal: "SIGHUP" });
        proxy.reload().catch((err) =>
          logger.error("credentials-reload-failed", {
            error: describeError(err),
          })
        );
      });
      const signal = await signals.stopped;
      logger.info("signal-received", { signal });
      await proxy.close();
    } finally {
      signals.release();
    }
    return 0;
  },
}];

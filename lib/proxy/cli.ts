/** `sigil proxy`: run the TLS proxy until SIGTERM/SIGINT; SIGHUP reloads. @module */
import type { Command } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import { requireFlag, systemdNotifier, watchSignals } from "../common/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import { loadConfig, requireSection } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { createLogger } from "../observe/mod.ts";
import { CredentialsError } from "./errors.ts";
import { startProxy } from "./_proxy.ts";
import type { RunningProxy } from "./_proxy.ts";

/** How often a proxy waiting for its first credentials looks again. */
const CREDENTIALS_POLL_MS = 1_000;

/** Whether every path exists (then a NotFound was the cert or key file). */
async function allExist(paths: string[]): Promise<boolean> {
  for (const p of paths) {
    try {
      await Deno.stat(p);
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Starts the proxy; while an instance's certificate or key file does not
 * exist yet in its credentials_dir (started before the rotator's first
 * issuance) it logs
 * `credentials-awaited` once and tries again, until `stopped` resolves
 * (then `undefined`). Any other start failure is thrown.
 */
async function startWhenIssued(
  section: ProxySection,
  logger: Logger,
  stopped: Promise<unknown>,
): Promise<RunningProxy | undefined> {
  let waiting = false;
  let stop = false;
  void stopped.then(() => (stop = true));
  while (true) {
    try {
      const proxy = await startProxy(section, { logger });
      if (waiting) logger.info("credentials-arrived", {});
      if (!stop) return proxy;
      await proxy.close();
      return undefined;
    } catch (err) {
      // Cert or key not written yet, in a credentials_dir that exists: the
      // rotator's first issuance is pending. A missing credentials_dir or
      // CA bundle is a config error (sigil config check refuses it too).
      const missing = err instanceof CredentialsError &&
        err.code === "ERR_PROXY_CREDENTIALS_UNREADABLE" &&
        err.cause instanceof Deno.errors.NotFound &&
        (await allExist(section.instances.flatMap((i) => [
          i.credentials_dir,
          ...i.trusted_client_cas,
        ])));
      if (!missing) throw err;
      if (!waiting) {
        logger.warn("credentials-awaited", {
          error: err.message,
          detail:
            "not serving until the rotator has written this instance's first certificate",
        });
      }
      waiting = true;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      stopped,
      new Promise((r) => (timer = setTimeout(r, CREDENTIALS_POLL_MS))),
    ]);
    clearTimeout(timer);
    if (stop) return undefined;
  }
}

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
      const proxy = await startWhenIssued(section, logger, signals.stopped);
      if (!proxy) return 0;
      const notify = systemdNotifier({ logger });
      await notify.ready();
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
      await notify.stopping();
      await proxy.close();
      await notify.close();
    } finally {
      signals.release();
    }
    return 0;
  },
}];

/** `sigil credhub` and `sigil launch` subcommands. @module */
import type { Command } from "../common/mod.ts";
import { requireFlag, systemdNotifier, watchSignals } from "../common/mod.ts";
import {
  assertConfigFiles,
  loadConfig,
  requireSection,
} from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";
import { startCredhub } from "./_server.ts";
import { openCredentialStore } from "./_store_pg.ts";

const CONFIG = {
  type: "string",
  short: "c",
  arg: "FILE",
  description: "Config file with a credhub section (required)",
} as const;

/** Commands of the credhub role. */
export const CREDHUB_COMMANDS: Command[] = [{
  name: "credhub",
  summary:
    "Serve a CredHub-compatible credential store (mTLS instance identities, bearer tokens)",
  flags: { config: CONFIG },
  async run(flags) {
    const file = requireFlag(flags, "config");
    const config = requireSection(
      await loadConfig(file),
      "credhub",
      "sigil credhub",
    );
    // The checks 'sigil config check' runs, so both refuse the same files.
    await assertConfigFiles(file, { credhub: config });
    const logger = createLogger("credhub", { level: config.log_level });
    const signals = watchSignals();
    try {
      const ch = await startCredhub(config, { logger });
      const notify = systemdNotifier({ logger });
      await notify.ready();
      signals.onReload(() => {
        try {
          ch.store.keys.reload();
          logger.info("keys-reloaded", { keys: ch.store.keys.ids().length });
        } catch (err) {
          // The keys in memory stay in use.
          logger.error("keys-reload-failed", {
            reason: (err as Error).message,
          });
        }
      });
      const signal = await signals.stopped;
      logger.info("signal-received", { signal });
      await notify.stopping();
      await ch.close();
      await notify.close();
      return 0;
    } finally {
      signals.release();
    }
  },
}, {
  name: "credhub rotate-key",
  summary:
    "Re-encrypt every credential under a new key while the server runs, then delete the old keys",
  flags: { config: CONFIG },
  async run(flags) {
    const config = requireSection(
      await loadConfig(requireFlag(flags, "config")),
      "credhub",
      "sigil credhub rotate-key",
    );
    const store = await openCredentialStore(config);
    try {
      const { keyId, rows } = await store.rotateKey();
      console.log(
        `Rotated to key ${keyId}: ${rows} credential versions re-encrypted`,
      );
      return 0;
    } finally {
      await store.close();
    }
  },
}];

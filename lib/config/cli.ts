/** `sigil config check`. @module */
import type { Command } from "../common/mod.ts";
import { UsageError } from "../common/mod.ts";
import { loadConfig } from "./load.ts";
import { assertConfigFiles } from "./_files.ts";
import { ConfigError } from "./errors.ts";

/** Commands of the config concern. */
export const CONFIG_COMMANDS: Command[] = [{
  name: "config check",
  summary:
    "Validate a config file and the files it names; print every problem with its path and line",
  positionals: "FILE",
  flags: {
    "schema-only": {
      type: "boolean",
      description:
        "Check the YAML against the schema only, not the files it names (a config written for another machine)",
    },
  },
  async run(flags, positionals) {
    const [file, ...extra] = positionals;
    if (!file || extra.length) {
      throw new UsageError("Usage: sigil config check [--schema-only] FILE");
    }
    const cfg = await loadConfig(file);
    const sections = Object.entries(cfg).filter(([, v]) => v !== undefined).map(
      ([k]) => k,
    );
    if (sections.length === 0) {
      throw new ConfigError(
        `Invalid config "${file}": it has no section; add at least one of ca, rotator, proxy, router, credhub, dev (see config.example.yaml)`,
        [{ path: "(root)", message: "no section" }],
      );
    }
    if (!flags["schema-only"]) await assertConfigFiles(file, cfg);
    console.log(`${file}: ok (sections: ${sections.join(", ")})`);
    return 0;
  },
}];

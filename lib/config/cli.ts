/** `sigil config check`. @module */
import type { Command } from "../common/mod.ts";
import { UsageError } from "../common/mod.ts";
import { loadConfig } from "./load.ts";

/** Commands of the config concern. */
export const CONFIG_COMMANDS: Command[] = [{
  name: "config check",
  summary: "Validate a config file; print every problem with its path and line",
  positionals: "FILE",
  flags: {},
  async run(_flags, positionals) {
    const [file, ...extra] = positionals;
    if (!file || extra.length) {
      throw new UsageError("Usage: sigil config check FILE");
    }
    const cfg = await loadConfig(file);
    const sections = Object.entries(cfg).filter(([, v]) => v !== undefined).map(
      ([k]) => k,
    );
    console.log(`${file}: ok (sections: ${sections.join(", ") || "none"})`);
    return 0;
  },
}];

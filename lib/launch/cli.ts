/** `sigil launch [--config FILE | flags] -- CMD ARGS…`. @module */
import { z } from "zod";
import type { Command, FlagValues } from "../common/mod.ts";
import { stringFlag, UsageError } from "../common/mod.ts";
import { LaunchSection, loadConfig } from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";
import { runLaunch } from "./_launch.ts";

/** Flag → `launch` option it overrides. */
const OVERRIDES: Record<string, keyof LaunchSection> = {
  "credhub-url": "credhub_url",
  "ca-bundle": "ca_bundle",
  "system-cert-path": "system_cert_path",
  "credentials-dir": "credentials_dir",
  "attempts": "attempts",
  "retry-delay": "retry_delay",
};

/** The launch section: the config file's (if any) with the flags on top. */
async function resolveSection(flags: FlagValues): Promise<LaunchSection> {
  const file = stringFlag(flags, "config");
  const base = file ? (await loadConfig(file)).launch ?? {} : {};
  const given: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(OVERRIDES)) {
    const v = stringFlag(flags, flag);
    if (v !== undefined) given[key] = key === "attempts" ? Number(v) : v;
  }
  const checked = LaunchSection.safeParse(given);
  if (!checked.success) {
    throw new UsageError(
      `Invalid flags for "sigil launch":\n${z.prettifyError(checked.error)}`,
    );
  }
  const out = { ...LaunchSection.parse({}), ...base } as LaunchSection;
  for (const key of Object.keys(given) as (keyof LaunchSection)[]) {
    (out as Record<string, unknown>)[key] = checked.data[key];
  }
  if (out.retry_delay > out.max_retry_delay) {
    out.max_retry_delay = out.retry_delay;
  }
  return out;
}

/** The launch command. */
export const LAUNCH_COMMANDS: Command[] = [{
  name: "launch",
  summary:
    "Run an app as Diego's launcher does: interpolate credhub-refs in VCAP_SERVICES (instance certificate, mTLS), set CF_INSTANCE_*",
  positionals: "-- CMD [ARGS...]",
  flags: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      description: "Config file with a launch section (optional)",
    },
    "credhub-url": {
      type: "string",
      arg: "URL",
      description:
        "CredHub's https URL (default: credhub-uri in VCAP_PLATFORM_OPTIONS)",
    },
    "ca-bundle": {
      type: "string",
      arg: "FILE",
      description: "PEM bundle trusted for CredHub's certificate",
    },
    "system-cert-path": {
      type: "string",
      arg: "DIR",
      description:
        "Directory whose *.crt files are trusted (default: $CF_SYSTEM_CERT_PATH)",
    },
    "credentials-dir": {
      type: "string",
      arg: "DIR",
      description:
        "The instance's instance.crt/instance.key directory (default: $CF_INSTANCE_CERT, $CF_INSTANCE_KEY)",
    },
    attempts: {
      type: "string",
      arg: "N",
      description: "Interpolation attempts before exit 4 (default 3)",
    },
    "retry-delay": {
      type: "string",
      arg: "DURATION",
      description:
        "First delay between attempts, doubled each time (default 1s)",
    },
  },
  async run(flags, positionals) {
    if (positionals.length === 0) {
      throw new UsageError(
        'Missing command for "sigil launch": write it after "--", e.g. sigil launch -- ./server --port 8080',
      );
    }
    const section = await resolveSection(flags);
    return await runLaunch(section, positionals, {
      logger: createLogger("launch"),
    });
  },
}];

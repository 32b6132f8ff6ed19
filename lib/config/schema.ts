/**
 * The whole Sigil configuration: one YAML file with a section per role. Every
 * section is optional in the file; each subcommand requires its own.
 * @module
 */
import { z } from "zod";
import { CaSection } from "./_ca.ts";
import { RotatorSection } from "./_rotator.ts";
import { ProxySection } from "./_proxy.ts";
import { RouterSection } from "./_router.ts";
import { DevSection } from "./_dev.ts";
import { CredhubSection } from "./_credhub.ts";
import { LaunchSection } from "./_launch.ts";

/** The configuration schema. */
export const Config = z.strictObject({
  ca: CaSection.optional(),
  rotator: RotatorSection.optional(),
  proxy: ProxySection.optional(),
  router: RouterSection.optional(),
  dev: DevSection.optional(),
  credhub: CredhubSection.optional(),
  launch: LaunchSection.optional(),
});
/** The resolved configuration (defaults applied). */
export type Config = z.output<typeof Config>;
/** The configuration as users write it (everything optional that has a default). */
export type ConfigInput = z.input<typeof Config>;

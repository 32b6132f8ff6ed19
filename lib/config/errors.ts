/** Errors of the config concern. @module */
import { ApplianceError } from "../common/errors.ts";

/** One problem found in a config file. */
export interface ConfigIssue {
  /** Dotted path, e.g. `ca.dirr` or `proxy.instances.0.listeners`. */
  path: string;
  message: string;
  /** 1-based line in the YAML file, when known. */
  line?: number;
}

/**
 * A config file that cannot be read, parsed or validated. The message lists
 * every problem, one per line (`ca.dirr: unrecognized key (line 3)`).
 *
 * @example
 * ```ts
 * import { ConfigError } from "./errors.ts";
 * const e = new ConfigError("Invalid config", [{ path: "ca.dir", message: "required" }]);
 * console.assert(e.code === "ERR_CONFIG_INVALID" && e.issues.length === 1);
 * ```
 */
export class ConfigError extends ApplianceError {
  readonly issues: ConfigIssue[];

  constructor(
    message: string,
    issues: ConfigIssue[] = [],
    options?: ErrorOptions,
  ) {
    super("ERR_CONFIG_INVALID", message, options);
    this.issues = issues;
  }
}

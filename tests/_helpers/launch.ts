/**
 * Runs `sigil launch` as a subprocess against a test CredHub.
 * @module
 */
import type { InstanceFiles, TestCredhub } from "./credhub.ts";
import { MAIN, runCommand } from "./proc.ts";
import type { RunResult } from "./proc.ts";

/** A child that prints the VCAP_SERVICES it was started with, as is. */
export const PRINT_VCAP = ["sh", "-c", 'printf %s "$VCAP_SERVICES"'];

/**
 * `sigil launch --credhub-url … --system-cert-path <t>/certs -- CHILD…`
 * with `VCAP_SERVICES` and the instance's files in its environment.
 *
 * @example
 * ```ts ignore
 * const r = await sigilLaunch(t, await instanceFiles(t, app), vcap, PRINT_VCAP);
 * ```
 */
export function sigilLaunch(
  t: TestCredhub,
  who: InstanceFiles,
  vcap: string,
  child: string[],
  o: { url?: string; attempts?: number } = {},
): Promise<RunResult> {
  return runCommand(Deno.execPath(), [
    "run",
    "-A",
    "--quiet",
    MAIN,
    "launch",
    "--credhub-url",
    o.url ?? t.ch.url,
    "--system-cert-path",
    `${t.dir}/certs`,
    "--attempts",
    String(o.attempts ?? 2),
    "--",
    ...child,
  ], {
    env: {
      VCAP_SERVICES: vcap,
      CF_INSTANCE_CERT: who.cert,
      CF_INSTANCE_KEY: who.key,
    },
  });
}

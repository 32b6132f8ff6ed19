/**
 * `sigil launch -- CMD ARGS…`: prepare the app's environment the way
 * Diego's launcher does (buildpackapplifecycle `env/env.go` + `credhub/`),
 * then run the app. Deno cannot `exec`, so the app is a child with the same
 * stdio; SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on
 * and the child's exit status is returned (128 + signal number when a signal
 * ended it, as shells report it).
 * @module
 */
import { join, resolve } from "node:path";
import type { LaunchSection } from "../config/mod.ts";
import { describeError } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { LaunchError } from "./errors.ts";
import { instanceEnv } from "./_env.ts";
import { interpolateServices } from "./_interpolate.ts";

/** Dependencies of {@linkcode prepareLaunchEnv} and {@linkcode runLaunch}. */
export interface LaunchDeps {
  logger: Logger;
  /** The environment the launcher received. @default {Deno.env.toObject()} */
  env?: Record<string, string>;
  /** Injected for tests. @default {setTimeout} */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * The child's environment: instance variables, `VCAP_SERVICES` with its
 * `credhub-ref`s replaced (when CredHub is configured and
 * `CREDHUB_SKIP_INTERPOLATION` is unset), `VCAP_PLATFORM_OPTIONS` removed.
 *
 * @throws {LaunchError} When the platform options are invalid, the client
 *   cannot be set up, or interpolation failed after every attempt; the
 *   message is the one CF's launcher prints.
 * @example
 * ```ts ignore
 * const env = await prepareLaunchEnv(config.launch!, { logger });
 * ```
 */
export async function prepareLaunchEnv(
  section: LaunchSection,
  deps: LaunchDeps,
): Promise<Record<string, string>> {
  const env = await instanceEnv(section, deps.env ?? Deno.env.toObject());
  let platformUri: string | undefined;
  const options = env.VCAP_PLATFORM_OPTIONS;
  if (options) {
    try {
      const o = JSON.parse(options);
      const uri = o?.["credhub-uri"];
      if (typeof uri === "string" && uri !== "") platformUri = uri;
    } catch (err) {
      throw new LaunchError(
        "ERR_LAUNCH_PLATFORM_OPTIONS",
        `Invalid platform options: VCAP_PLATFORM_OPTIONS is not JSON: ${
          describeError(err)
        }`,
        { cause: err },
      );
    }
  }
  delete env.VCAP_PLATFORM_OPTIONS;
  if (section.system_cert_path) {
    env.CF_SYSTEM_CERT_PATH = resolve(section.system_cert_path);
  }
  const url = section.credhub_url ?? platformUri;
  const services = env.VCAP_SERVICES ?? "";
  if (env.CREDHUB_SKIP_INTERPOLATION || !services.includes(`"credhub-ref"`)) {
    return env;
  }
  if (!url) {
    deps.logger.warn("credhub-refs-not-interpolated", {
      reason:
        "no launch.credhub_url and no credhub-uri in VCAP_PLATFORM_OPTIONS",
    });
    return env;
  }
  const setup = (m: string, cause?: unknown) =>
    new LaunchError(
      "ERR_LAUNCH_SETUP",
      `Unable to interpolate credhub refs: Unable to set up credhub client: ${m}`,
      { cause },
    );
  if (!env.CF_INSTANCE_CERT || !env.CF_INSTANCE_KEY) {
    throw setup(
      "Missing CF_INSTANCE_CERT and/or CF_INSTANCE_KEY (or launch.credentials_dir)",
    );
  }
  const caPems = await trustedCas(section, env, setup);
  try {
    env.VCAP_SERVICES = await interpolateServices(services, {
      url,
      certFile: env.CF_INSTANCE_CERT,
      keyFile: env.CF_INSTANCE_KEY,
      caPems,
      attempts: section.attempts,
      retryDelayMs: section.retry_delay,
      maxRetryDelayMs: section.max_retry_delay,
      timeoutMs: section.request_timeout,
      logger: deps.logger,
      sleep: deps.sleep,
    });
  } catch (err) {
    if (!(err instanceof LaunchError)) throw err;
    throw new LaunchError(
      err.code,
      `Unable to interpolate credhub refs: ${err.message}`,
      { cause: err },
    );
  }
  return env;
}

/** `launch.ca_bundle`, then every `*.crt` of the system cert path (CF's rule). */
async function trustedCas(
  section: LaunchSection,
  env: Record<string, string>,
  setup: (m: string, cause?: unknown) => LaunchError,
): Promise<string[]> {
  const pems: string[] = [];
  if (section.ca_bundle) {
    try {
      pems.push(await Deno.readTextFile(section.ca_bundle));
    } catch (err) {
      throw setup(
        `Cannot read launch.ca_bundle "${section.ca_bundle}": ${
          describeError(err)
        }`,
        err,
      );
    }
  }
  const dir = env.CF_SYSTEM_CERT_PATH;
  if (!dir) {
    if (pems.length > 0) return pems;
    throw setup("Missing CF_SYSTEM_CERT_PATH (or launch.ca_bundle)");
  }
  try {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".crt")) names.push(e.name);
    }
    for (const n of names.sort()) {
      pems.push(await Deno.readTextFile(join(dir, n)));
    }
  } catch (err) {
    throw setup(
      `Can't read contents of system cert path "${dir}": ${describeError(err)}`,
      err,
    );
  }
  return pems;
}

const FORWARDED: Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
];
const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/**
 * Runs `argv` with `env` (and nothing else), stdio inherited, forwarding
 * signals; resolves to its exit status. 127 when the command does not exist,
 * 126 when it may not be run (shell conventions).
 *
 * @example
 * ```ts ignore
 * const code = await runChild(["node", "server.js"], env, logger);
 * ```
 */
export async function runChild(
  argv: string[],
  env: Record<string, string>,
  logger: Logger,
): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new LaunchError("ERR_LAUNCH_SETUP", "No command to launch");
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      env,
      clearEnv: true,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (err) {
    const notFound = err instanceof Deno.errors.NotFound;
    logger.error("app-start-failed", {
      command: cmd,
      reason: notFound ? "command not found" : describeError(err),
    });
    return notFound ? 127 : 126;
  }
  logger.info("app-started", { command: cmd, pid: child.pid });
  const handlers = FORWARDED.map((sig) => {
    const h = () => {
      try {
        child.kill(sig);
      } catch {
        // Already gone: its status is on the way.
      }
    };
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  try {
    const status = await child.status;
    if (status.signal) return 128 + (SIGNAL_NUMBERS[status.signal] ?? 0);
    return status.code;
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}

/**
 * Prepares the environment, then runs the app. Resolves to the app's exit
 * status, or 4 (after printing CF's message on stderr) when the environment
 * could not be prepared.
 *
 * @example
 * ```ts ignore
 * Deno.exit(await runLaunch(config.launch!, ["./app"], { logger }));
 * ```
 */
export async function runLaunch(
  section: LaunchSection,
  argv: string[],
  deps: LaunchDeps,
): Promise<number> {
  let env: Record<string, string>;
  try {
    env = await prepareLaunchEnv(section, deps);
  } catch (err) {
    if (!(err instanceof LaunchError)) throw err;
    deps.logger.error("launch-failed", { code: err.code, reason: err.message });
    console.error(`sigil launch: ${err.message}`);
    return 4;
  }
  return await runChild(argv, env, deps.logger);
}

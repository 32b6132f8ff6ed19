/**
 * What runs after a successful swap: an `on_rotate` command and/or a reload
 * signal to the process named in `pid_file` (read fresh every time, so a
 * restarted process is signalled, not its stale pid).
 * @module
 */
import type { Logger } from "../observe/mod.ts";

/** The hook settings of one instance (instance values override the section's). */
export interface HookSettings {
  onRotate?: string[];
  reloadSignal?: Deno.Signal;
  pidFile?: string;
  timeoutMs: number;
}

/** Facts passed to the hook command as environment variables. */
export interface RotateEvent {
  instanceId: string;
  certFile: string;
  keyFile: string;
  serial: string;
  notAfter: Date;
}

/**
 * Runs the configured hooks; never throws (failures are logged).
 *
 * @example
 * ```ts ignore
 * await runRotateHooks({ onRotate: ["systemctl", "reload", "sigil-proxy@i-1"], timeoutMs: 30_000 }, event, log);
 * ```
 */
export async function runRotateHooks(
  hooks: HookSettings,
  event: RotateEvent,
  log: Logger,
): Promise<void> {
  const fields = { instance: event.instanceId, serial: event.serial };
  if (hooks.onRotate && hooks.onRotate.length > 0) {
    const [cmd, ...args] = hooks.onRotate as [string, ...string[]];
    try {
      const out = await new Deno.Command(cmd, {
        args,
        env: {
          SIGIL_INSTANCE_ID: event.instanceId,
          SIGIL_CERT_FILE: event.certFile,
          SIGIL_KEY_FILE: event.keyFile,
          SIGIL_SERIAL: event.serial,
          SIGIL_NOT_AFTER: event.notAfter.toISOString(),
        },
        stdin: "null",
        stdout: "null",
        stderr: "null",
        signal: AbortSignal.timeout(hooks.timeoutMs),
      }).output();
      if (out.success) log.info("on-rotate-done", { ...fields, command: cmd });
      else {
        log.warn("on-rotate-failed", {
          ...fields,
          command: cmd,
          exit_code: out.code,
          signal: out.signal ?? undefined,
        });
      }
    } catch (err) {
      log.warn("on-rotate-failed", {
        ...fields,
        command: cmd,
        error: (err as Error).message,
      });
    }
  }
  if (hooks.reloadSignal && hooks.pidFile) {
    try {
      const text = (await Deno.readTextFile(hooks.pidFile)).trim();
      const pid = Number(text);
      if (!Number.isInteger(pid) || pid <= 1) {
        throw new Error(`"${hooks.pidFile}" does not hold a pid`);
      }
      Deno.kill(pid, hooks.reloadSignal);
      log.info("reload-signal-sent", {
        ...fields,
        pid,
        signal: hooks.reloadSignal,
      });
    } catch (err) {
      log.warn("reload-signal-failed", {
        ...fields,
        pid_file: hooks.pidFile,
        signal: hooks.reloadSignal,
        error: (err as Error).message,
      });
    }
  }
}

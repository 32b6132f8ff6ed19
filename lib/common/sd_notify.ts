/**
 * systemd's readiness protocol (`Type=notify`, sd_notify(3)): datagrams such
 * as `READY=1` to the unix socket named by `$NOTIFY_SOCKET`, and `WATCHDOG=1`
 * every half `$WATCHDOG_USEC` when the unit sets `WatchdogSec=`.
 *
 * Deno 2.9 sends unix datagrams only with `Deno.listenDatagram` (behind
 * `--unstable-net`, which the launcher and `deno task` pass). The socket it
 * sends from is bound to a file in a private temporary directory, removed on
 * `close()`. Without `$NOTIFY_SOCKET` every call does nothing.
 * @module
 */
import { describeError } from "./errors.ts";

/** What a role tells its service manager. */
export interface Notifier {
  /** Whether `$NOTIFY_SOCKET` was set (and usable). */
  readonly active: boolean;
  /** `READY=1` (and starts the watchdog when `$WATCHDOG_USEC` is set). */
  ready(status?: string): Promise<void>;
  /** `STOPPING=1`: the role is draining. */
  stopping(): Promise<void>;
  /** Stops the watchdog and removes the sending socket. */
  close(): Promise<void>;
}

/** Options of {@linkcode systemdNotifier}. */
export interface NotifierOptions {
  /** Environment lookup. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
  /** Where `sd-notify-failed` is logged when a datagram cannot be sent. */
  logger?: {
    warn(event: string, fields: Record<string, unknown>): void;
  };
}

interface DatagramConn {
  send(
    data: Uint8Array,
    addr: { transport: "unixpacket"; path: string },
  ): Promise<number>;
  close(): void;
}
type ListenDatagram = (
  o: { transport: "unixpacket"; path: string },
) => DatagramConn;

/**
 * A notifier for this process, from `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`.
 * Both are removed from the environment so child processes (rotator hooks,
 * `sigil launch` apps) do not report for this unit.
 *
 * @example
 * ```ts
 * import { systemdNotifier } from "./sd_notify.ts";
 * const n = systemdNotifier({ env: () => undefined });
 * await n.ready(); // no $NOTIFY_SOCKET: nothing is sent
 * console.assert(!n.active);
 * await n.close();
 * ```
 */
export function systemdNotifier(options: NotifierOptions = {}): Notifier {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const socket = env("NOTIFY_SOCKET");
  const watchdogUsec = Number(env("WATCHDOG_USEC") ?? "");
  const watchdogPid = env("WATCHDOG_PID");
  if (!options.env) {
    for (const name of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) {
      Deno.env.delete(name);
    }
  }
  const listen = (Deno as { listenDatagram?: ListenDatagram }).listenDatagram;
  const onError = (err: unknown, state: string) =>
    options.logger?.warn("sd-notify-failed", {
      notify_socket: socket,
      state: state.split("\n")[0],
      error: describeError(err),
    });
  // An abstract socket ("@...") has no path Deno can send to.
  const usable = !!socket && socket.startsWith("/") && !!listen;
  let conn: DatagramConn | undefined;
  let dir: string | undefined;
  let watchdog: ReturnType<typeof setInterval> | undefined;

  const send = async (state: string): Promise<void> => {
    if (!usable) return;
    try {
      if (!conn) {
        dir = await Deno.makeTempDir({ prefix: "sigil-notify-" });
        conn = listen!({ transport: "unixpacket", path: `${dir}/sock` });
      }
      await conn.send(new TextEncoder().encode(state), {
        transport: "unixpacket",
        path: socket!,
      });
    } catch (err) {
      onError(err, state);
    }
  };
  if (socket && !usable) {
    onError(
      new Error(
        listen
          ? `NOTIFY_SOCKET "${socket}" is not a path (abstract sockets are not supported)`
          : "sending to NOTIFY_SOCKET needs Deno's --unstable-net flag",
      ),
      "READY=1",
    );
  }

  return {
    active: usable,
    async ready(status) {
      await send(status ? `READY=1\nSTATUS=${status}` : "READY=1");
      const forUs = watchdogPid === undefined ||
        watchdogPid === String(Deno.pid);
      if (usable && watchdogUsec > 0 && forUs && watchdog === undefined) {
        const everyMs = Math.max(1, Math.floor(watchdogUsec / 2000));
        const timer = setInterval(() => void send("WATCHDOG=1"), everyMs);
        Deno.unrefTimer(timer);
        watchdog = timer;
      }
    },
    async stopping() {
      await send("STOPPING=1");
    },
    async close() {
      if (watchdog !== undefined) clearInterval(watchdog);
      watchdog = undefined;
      try {
        conn?.close();
      } catch {
        // already closed
      }
      conn = undefined;
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
      dir = undefined;
    },
  };
}

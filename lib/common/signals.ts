/**
 * The signal handling every long-running role shares: SIGTERM and SIGINT
 * stop it, SIGHUP reloads it.
 * @module
 */

/** Listeners for SIGTERM, SIGINT and SIGHUP, installed by {@linkcode watchSignals}. */
export interface SignalWatch {
  /** Resolves with the first SIGTERM or SIGINT; later ones are ignored. */
  readonly stopped: Promise<Deno.Signal>;
  /**
   * Runs `fn` on every SIGHUP from now on. A SIGHUP that arrived before (the
   * role was still starting) runs it once at once.
   */
  onReload(fn: () => void): void;
  /**
   * Stops handling SIGHUP (call when the role has shut down). SIGTERM and
   * SIGINT stay caught until the process exits, so a signal repeated during
   * the last steps of a shutdown cannot end it with status 143.
   */
  release(): void;
}

/**
 * Installs the listeners at once, so a signal that arrives while the role is
 * still starting is not lost, and a repeated SIGTERM while it shuts down
 * does not kill it (status 143) before it has drained.
 *
 * @example
 * ```ts ignore
 * const signals = watchSignals();
 * try {
 *   const server = await start();
 *   signals.onReload(() => void server.reload());
 *   await signals.stopped;
 *   await server.close();
 * } finally {
 *   signals.release();
 * }
 * ```
 */
export function watchSignals(): SignalWatch {
  const { promise: stopped, resolve } = Promise.withResolvers<Deno.Signal>();
  const onTerm = () => resolve("SIGTERM");
  const onInt = () => resolve("SIGINT");
  let reload: (() => void) | undefined;
  let pending = false;
  const onHup = () => reload ? reload() : (pending = true);
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGHUP", onHup);
  return {
    stopped,
    onReload(fn) {
      reload = fn;
      if (pending) {
        pending = false;
        fn();
      }
    },
    release() {
      Deno.removeSignalListener("SIGHUP", onHup);
    },
  };
}

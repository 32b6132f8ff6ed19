/**
 * Stopping the proxy in order: unregister every route, stop accepting, let
 * live connections finish for up to the drain timeout, cut the rest, then
 * the credential watcher and the admin API.
 * @module
 */
import { formatDuration } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { InstanceRuntime } from "./_instance.ts";
import type { RouteRegistrar } from "./_register.ts";
import type { CredentialWatcher } from "./_watch.ts";

/** What {@linkcode drainAndRelease} stops (any part may not have started). */
export interface ProxyParts {
  logger: Logger;
  registrars: readonly RouteRegistrar[];
  instances: readonly InstanceRuntime[];
  watcher: CredentialWatcher | undefined;
  admin: Deno.HttpServer<Deno.NetAddr> | undefined;
}

/**
 * Stops everything; connections get up to `drainTimeoutMs` to finish.
 *
 * @param drainTimeoutMs 0 cuts at once.
 */
export async function drainAndRelease(
  p: ProxyParts,
  drainTimeoutMs: number,
): Promise<void> {
  const { logger } = p;
  await Promise.allSettled(p.registrars.map((r) => r.stop()));
  const listeners = p.instances.flatMap((i) => i.listeners);
  const closed = listeners.map((l) => l.stopAccepting());
  const active = listeners.reduce((n, l) => n + l.active, 0);
  if (active > 0) {
    logger.info("proxy-draining", {
      connections: active,
      drain_timeout: formatDuration(drainTimeoutMs),
    });
    const drained = await Promise.all(
      listeners.map((l) => l.waitIdle(drainTimeoutMs)),
    );
    if (drained.some((ok) => !ok)) {
      const left = listeners.reduce((n, l) => n + l.active, 0);
      logger.warn("proxy-drain-timeout", { connections_cut: left });
    }
  }
  for (const l of listeners) l.destroyAll();
  await Promise.all(closed);
  await p.watcher?.close();
  await p.admin?.shutdown();
}

/**
 * Stopping the router in order: stop accepting, let requests finish for up to
 * the grace period (on the router's clock), cut what still runs (streams,
 * WebSockets) with its backend, then the API (so `/healthz` says "draining"
 * until the end), NATS, the token verifier and the access log.
 * @module
 */
import type { Clock, TimerId } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";

/** What {@linkcode shutdown} stops. */
export interface ShutdownParts {
  clock: Clock;
  logger: Logger;
  /** Client listeners (`Deno.HttpServer` or a client front). */
  servers: { shutdown(): Promise<void>; finished: Promise<void> }[];
  /** The registration API. */
  api: Deno.HttpServer<Deno.NetAddr> | undefined;
  /** Background timers. */
  stopLoops(): void;
  /** Closes open WebSocket relays. */
  closeUpgrades(): void;
  /** Destroys every backend connection. */
  closeBackends(): void;
  /** NATS, the token verifier, the access log. */
  closeRest(): Promise<void>;
}

/**
 * Stops everything; requests in flight get up to `graceMs` to finish.
 *
 * @param graceMs 0 cuts at once.
 */
export async function shutdown(
  p: ShutdownParts,
  graceMs: number,
): Promise<void> {
  p.stopLoops();
  let timer: TimerId | undefined;
  const grace = new Promise<void>((r) => {
    if (graceMs <= 0) r();
    else timer = p.clock.setTimeout(r, graceMs);
  });
  await Promise.race([
    Promise.all(p.servers.map((s) => s.shutdown().catch(() => {}))),
    grace,
  ]);
  // Whatever still runs (streams, WebSockets) ends with its backend.
  p.closeUpgrades();
  p.closeBackends();
  await Promise.all(p.servers.map((s) => s.finished.catch(() => {})));
  await p.api?.shutdown().catch(() => {});
  if (timer !== undefined) p.clock.clearTimeout(timer);
  await p.closeRest();
  p.logger.info("router-stopped", {});
}

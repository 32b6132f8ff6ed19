/**
 * Stopping the router in gorouter's order (router/router.go `Drain`): the
 * caller has already turned `/healthz` to 503 `draining` and responses to
 * `Connection: close`; the router keeps accepting and serving for the drain
 * wait (so a load balancer checking `/healthz` moves traffic away first),
 * then stops accepting and closes idle connections, lets requests finish for
 * up to the grace period (on the router's clock), cuts what still runs
 * (streams, WebSockets) with its backend, then the API (so `/healthz` says
 * "draining" until the end), NATS, the token verifier and the access log.
 * @module
 */
import type { Clock, TimerId } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { ClientListener } from "./_listeners.ts";

/** What {@linkcode shutdown} stops. */
export interface ShutdownParts {
  clock: Clock;
  logger: Logger;
  /** Client listeners. */
  servers: ClientListener[];
  /** The registration API. */
  api: Deno.HttpServer<Deno.NetAddr> | undefined;
  /** Requests in flight, for the log. */
  inflight(): number;
  /** Background timers. */
  stopLoops(): void;
  /** Closes open WebSocket relays. */
  closeUpgrades(): void;
  /** Destroys every backend connection. */
  closeBackends(): void;
  /** NATS, the token verifier, the access log. */
  closeRest(): Promise<void>;
}

/** Timings of {@linkcode shutdown}, in milliseconds. */
export interface ShutdownTimes {
  /** Keep accepting and serving this long first (`drain_wait`). 0 skips it. */
  waitMs: number;
  /** Then requests in flight get this long to finish. 0 cuts at once. */
  graceMs: number;
  /** Resolves to end the wait early (`close()` during a drain). */
  skipWait?: Promise<void>;
}

/** Stops everything in order; see the module comment. */
export async function shutdown(
  p: ShutdownParts,
  times: ShutdownTimes,
): Promise<void> {
  if (times.waitMs > 0) {
    let id: TimerId | undefined;
    await Promise.race([
      new Promise<void>((r) => (id = p.clock.setTimeout(r, times.waitMs))),
      times.skipWait,
    ]);
    p.clock.clearTimeout(id!);
  }
  p.stopLoops();
  p.logger.info("router-stopped-accepting", {
    inflight: p.inflight(),
    timeout_ms: times.graceMs,
  });
  let timer: TimerId | undefined;
  const grace = new Promise<void>((r) => {
    if (times.graceMs <= 0) r();
    else timer = p.clock.setTimeout(r, times.graceMs);
  });
  await Promise.race([
    Promise.all(p.servers.map((s) => s.stopAccepting().catch(() => {}))),
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

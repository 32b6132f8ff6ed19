/**
 * The prune loop: plain endpoints past their stale threshold are removed;
 * TLS endpoints are never removed by age, but past the threshold they get a
 * TLS handshake probe with the same identity check and are removed if it
 * fails (beyond Cloud Foundry, see routing-release#285).
 * @module
 */
import type { Clock } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import type { RouteEvents } from "./_events.ts";
import type { Endpoint, Pool } from "./_pool.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";
import type { Transports } from "./_transport.ts";

const PROBE_CONCURRENCY = 32;

/** Options of {@linkcode createPruner}. */
export interface PrunerOptions {
  registry: Registry;
  transports: Transports;
  stats: RouterStats;
  logger: Logger;
  clock: Clock;
  /** Probe stale TLS endpoints. */
  probeStaleTls: boolean;
  /** True while pruning must pause (NATS down). */
  suspended: () => boolean;
  /** Records each prune for the status page. */
  events?: RouteEvents;
}

/**
 * Creates one prune cycle; the caller schedules it every `prune_interval`.
 *
 * @returns A function running one cycle, resolving when its probes are done.
 */
export function createPruner(o: PrunerOptions): () => Promise<void> {
  const { registry, transports, stats, logger, clock } = o;
  // The probe dials like a request (same identity check, same dial and
  // handshake timeouts, on the router's clock) and sends nothing.
  const probe = (ep: Endpoint): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = transports.connect({
        host: ep.host,
        port: ep.port,
        ...transports.tlsOptions(ep.san),
      }, true);
      socket.once("secureConnect", () => {
        socket.end();
        socket.destroy();
        resolve(true);
      });
      socket.once("error", (err) => {
        const code = (err as { code?: string }).code ?? describeError(err);
        o.events?.failed(ep, "probe", code, clock.now());
        logger.warn("probe-failed", {
          backend: ep.key,
          instance: ep.san,
          code,
        });
        resolve(false);
      });
    });

  return async () => {
    if (o.suspended()) {
      logger.warn("prune-suspended", { reason: "nats unavailable" });
      return;
    }
    registry.sweepEmptied();
    const now = clock.now();
    const stale: Array<[Pool, Endpoint]> = [];
    let pruned = 0;
    for (const pool of [...registry.pools()]) {
      const eps = pool.endpoints;
      for (let i = eps.length - 1; i >= 0; i--) {
        const ep = eps[i];
        if (ep === undefined || now - ep.updatedAt <= ep.staleMs) continue;
        if (!ep.tls) {
          if (registry.prune(pool, ep)) {
            pruned++;
            o.events?.pruned(pool, ep, "stale", "", now);
          }
        } else if (o.probeStaleTls && now - ep.probedAt > ep.staleMs) {
          stale.push([pool, ep]);
        }
      }
    }
    if (pruned > 0) {
      stats.routesPruned.inc({ reason: "stale" }, pruned);
      logger.info("routes-pruned", { reason: "stale", count: pruned });
    }
    // One probe per distinct backend identity, a few at a time.
    const groups = new Map<string, Array<[Pool, Endpoint]>>();
    for (const pe of stale) {
      const k = `${pe[1].key}|${pe[1].san}`;
      const g = groups.get(k);
      if (g) g.push(pe);
      else groups.set(k, [pe]);
    }
    const queue = [...groups.values()];
    const worker = async () => {
      for (let g = queue.shift(); g !== undefined; g = queue.shift()) {
        const ok = await probe(g[0]![1]);
        for (const [pool, ep] of g) {
          if (ok) ep.probedAt = clock.now();
          else if (registry.prune(pool, ep)) {
            stats.routesPruned.inc({ reason: "probe" });
            o.events?.pruned(pool, ep, "probe", "", clock.now());
            logger.info("route-pruned", {
              reason: "probe",
              route: pool.uri,
              backend: ep.key,
              instance: ep.san,
            });
          }
        }
      }
    };
    await Promise.all(
      Array.from(
        { length: Math.min(PROBE_CONCURRENCY, queue.length) },
        worker,
      ),
    );
  };
}

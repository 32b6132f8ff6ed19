/**
 * The NATS route source: connects the bus with the router's identity
 * (`router.start` greetings), applies `router.register` / `router.unregister`,
 * counts invalid messages and tracks whether NATS is up, refreshing every
 * endpoint after an outage so none is pruned for the router's own blind spot.
 * @module
 */
import type { Clock } from "../common/mod.ts";
import type { RouterSection } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { NatsRouteBus } from "../routes/mod.ts";
import type { NatsRouteBusOptions, RegistryMessage } from "../routes/mod.ts";
import type { Registry } from "./_registry.ts";
import type { RouterStats } from "./_stats.ts";

/** The subset of the NATS bus the router uses. */
export interface RouteBusLike {
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Options of {@linkcode connectRouteSource}. */
export interface RouteSourceOptions {
  config: RouterSection;
  nats: NonNullable<RouterSection["nats"]>;
  /** CA bundle for TLS to NATS. */
  ca: string | undefined;
  registry: Registry;
  stats: RouterStats;
  clock: Clock;
  logger: Logger;
  apply(
    action: "register" | "unregister",
    message: RegistryMessage,
    source: string,
  ): void;
  /** @default {NatsRouteBus.connect} */
  connect?: (options: NatsRouteBusOptions) => Promise<RouteBusLike>;
}

/** A connected route source. */
export interface RouteSource {
  readonly bus: RouteBusLike;
  /** False while NATS is unreachable. */
  readonly up: boolean;
}

/** Connects the NATS bus and feeds its registrations to `apply`. */
export async function connectRouteSource(
  o: RouteSourceOptions,
): Promise<RouteSource> {
  const { config, nats, registry, clock } = o;
  const connect = o.connect ??
    ((opts: NatsRouteBusOptions) => NatsRouteBus.connect(opts));
  let up = false;
  let everUp = false;
  const bus = await connect({
    servers: nats.servers,
    name: "sigil-router",
    ...(o.ca !== undefined ? { tls: { ca: o.ca } } : {}),
    routerId: config.id,
    hosts: config.listen.hostname === "0.0.0.0" ? [] : [config.listen.hostname],
    minimumRegisterIntervalInSeconds: Math.round(
      config.register_interval / 1000,
    ),
    pruneThresholdInSeconds: Math.round(config.stale_threshold / 1000),
    // The same bound as the HTTP API's body.
    maxMessageBytes: config.api.max_body_bytes,
    onRegister: (m) => o.apply("register", m, "nats"),
    onUnregister: (m) => o.apply("unregister", m, "nats"),
    onInvalid: (reason, _err, subject) =>
      o.stats.registryMessages.inc({
        source: "nats",
        action: subject.endsWith("unregister") ? "unregister" : "register",
        result: reason,
      }),
    onStatus: (connected) => {
      up = connected;
      // Registrations could not arrive while NATS was down: give every
      // endpoint a fresh threshold rather than prune it for our outage.
      if (connected && everUp) registry.refreshAll(clock.now());
      if (connected) everUp = true;
    },
    logger: o.logger.child("routes"),
    clock,
  });
  return {
    bus,
    get up() {
      return up;
    },
  };
}

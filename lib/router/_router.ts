/**
 * `startRouter()`: the wiring of the router. Each part lives in its own file:
 * `_material.ts` reads and checks the files, `_listeners.ts` binds the client
 * listeners, `_api_server.ts` the registration API, `_nats.ts` the NATS route
 * source, `_loops.ts` runs pruning and the sweeps on the clock, and
 * `_shutdown.ts` stops it all in order. The data path is `_proxy.ts`.
 * @module
 */
import type { Clock } from "../common/mod.ts";
import { describeError, systemClock } from "../common/mod.ts";
import type { RouterSection } from "../config/mod.ts";
import type { Logger, MetricsRegistry } from "../observe/mod.ts";
import { createLogger } from "../observe/mod.ts";
import { CrlWatcher } from "../revocation/mod.ts";
import { RouterError } from "./errors.ts";
import { redactUrl } from "../routes/mod.ts";
import type { NatsRouteBusOptions, RegistryMessage } from "../routes/mod.ts";
import { createAccessLog } from "./_access_log.ts";
import { createProxyHandler } from "./_proxy.ts";
import { Registry } from "./_registry.ts";
import { RouterStats } from "./_stats.ts";
import { Transports } from "./_transport.ts";
import type { BackendDialer } from "./_transport.ts";
import { createPruner } from "./_prune.ts";
import { RouteEvents } from "./_events.ts";
import { routerStatus } from "./_status.ts";
import { loadBackendTls, loadRouterFiles } from "./_material.ts";
import { checkReusePort, serveClients } from "./_listeners.ts";
import type { ClientListener } from "./_listeners.ts";
import { startApi } from "./_api_server.ts";
import type { ApiServer } from "./_api_server.ts";
import { connectRouteSource } from "./_nats.ts";
import type { RouteBusLike, RouteSource } from "./_nats.ts";
import { startLoops } from "./_loops.ts";
import type { Loops } from "./_loops.ts";
import { shutdown } from "./_shutdown.ts";
import { RouteServiceSigner } from "./_route_service.ts";
import { RouterCertWatch } from "./_cert_watch.ts";

export type { RouteBusLike };

/** Injected dependencies of {@linkcode startRouter}. */
export interface RouterDeps {
  /** Time source for pruning, sweeps, timeouts and registration times. @default {systemClock} */
  clock?: Clock;
  /** Structured logger. @default {createLogger("router")} */
  logger?: Logger;
  /** Receives access-log lines instead of stdout / the configured file. */
  accessLogSink?: (line: string) => void;
  /** Reads key and certificate files. @default {Deno.readTextFile} */
  readTextFile?: (path: string) => Promise<string>;
  /** Opens backend connections (requests, WebSockets, probes). @default {dialBackend} */
  dialBackend?: BackendDialer;
  /** Connects the NATS bus. @default {NatsRouteBus.connect} */
  connectNats?: (options: NatsRouteBusOptions) => Promise<RouteBusLike>;
  /** Fetch for `backends.crl.url`. @default {fetch trusting its ca_bundle} */
  fetch?: typeof fetch;
}

/** A started router. */
export interface RunningRouter {
  /** Bound port of the plain-HTTP listener. */
  readonly port: number;
  /** Bound port of the HTTPS listener, when configured. */
  readonly httpsPort: number | undefined;
  /** Bound port of the registration API, when enabled. */
  readonly apiPort: number | undefined;
  /** The route table. */
  readonly registry: Registry;
  /** Metrics in Prometheus text format. */
  metrics(): string;
  /** Applies a registration as if it came from a source (used by `sigil dev`). */
  apply(
    action: "register" | "unregister",
    message: RegistryMessage,
    source?: string,
  ): void;
  /** Runs one prune cycle now and waits for its probes. */
  pruneNow(): Promise<void>;
  /**
   * Re-reads the backend CA and client certificate (new connections use
   * them) and serves a changed API certificate.
   */
  reload(): Promise<void>;
  /**
   * Drains as gorouter does: `/healthz` answers 503 and responses carry
   * `Connection: close` at once; the router keeps accepting for `waitMs`
   * (`drain_wait`), then stops accepting and lets in-flight requests finish
   * for up to `timeoutMs` (`drain_timeout`), then closes everything.
   */
  drain(timeoutMs?: number, waitMs?: number): Promise<void>;
  /**
   * Closes listeners, backend connections, NATS and timers at once (during
   * a drain: ends its wait; requests in flight keep their grace period).
   */
  close(): Promise<void>;
}

/**
 * Starts `sigil router`: the client listener(s), the registration API and,
 * when configured, the NATS bus and the prune loop.
 *
 * @param config The resolved `router` section.
 * @param deps Clock, logger and I/O overrides.
 * @returns The running router; port 0 in the config binds a free port.
 * @throws {RouterError} When a key or certificate file cannot be read.
 *
 * @example
 * ```ts ignore
 * import { startRouter } from "./mod.ts";
 * import { RouterSection } from "../config/mod.ts";
 * const router = await startRouter(RouterSection.parse({
 *   listen: "127.0.0.1:0", api: { listen: "127.0.0.1:0", public_key_file: "ca.jwk" },
 * }));
 * await router.close();
 * ```
 */
export async function startRouter(
  config: RouterSection,
  deps: RouterDeps = {},
): Promise<RunningRouter> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ??
    createLogger("router", { level: config.log_level });
  const read = deps.readTextFile ?? ((p: string) => Deno.readTextFile(p));
  const b = config.backends;
  checkReusePort(config.reuse_port, config.listen);
  const files = await loadRouterFiles(config, read);
  if (files.backendTls.ca === undefined) {
    logger.warn("backend-ca-missing", {
      detail: "TLS endpoints are verified against the system trust store",
    });
  }
  let currentTls = files.backendTls;
  const stats = new RouterStats(() => ({
    routes: registry.routeCount,
    endpoints: registry.endpointCount,
  }));
  const crl = b.crl
    ? await startBackendCrl(b.crl, read, {
      clock,
      logger,
      metrics: stats.registry,
      fetch: deps.fetch,
    })
    : undefined;

  const transports = new Transports({
    tls: currentTls,
    maxConns: b.max_conns,
    maxIdle: b.max_idle_conns,
    idleTimeoutMs: b.idle_timeout,
    dialTimeoutMs: b.dial_timeout,
    handshakeTimeoutMs: b.tls_handshake_timeout,
    maxConnAgeMs: b.max_conn_age,
    clock,
    dial: deps.dialBackend,
    isRevoked: crl ? (serial) => crl.isRevoked(serial) : undefined,
  });
  const registry = new Registry({
    staleThresholdMs: config.stale_threshold,
    emptyPoolMs: config.empty_pool_timeout,
    now: () => clock.now(),
    onRemove: (ep) => transports.release(ep),
  });
  // A CRL that changed: kept-alive connections were checked against the old
  // one, so every TLS endpoint gets a fresh agent (busy requests finish).
  crl?.onChange(() => {
    for (const pool of registry.pools()) {
      for (const ep of pool.endpoints) if (ep.tls) transports.release(ep);
    }
  });
  const accessLog = config.access_log.enabled
    ? await createAccessLog({
      file: config.access_log.file,
      sink: deps.accessLogSink,
    }).catch((err) => {
      crl?.close(); // its reload timer would keep the process alive
      throw err;
    })
    : undefined;
  const events = new RouteEvents();
  const rs = config.route_services;
  const handler = createProxyHandler({
    events,
    routeServices: {
      signer: config.route_services_secret === undefined
        ? undefined
        : new RouteServiceSigner(config.route_services_secret, {
          previousSecret: config.route_services_secret_decrypt_only,
          timeoutMs: config.route_services_timeout,
        }),
      recommendHttps: config.route_services_recommend_https,
      maxAttempts: rs.max_attempts,
      skipSslValidation: rs.skip_ssl_validation,
      ...files.routeServiceTls,
    },
    registry,
    transports,
    stats,
    accessLog,
    logger,
    clock,
    settings: {
      maxAttempts: b.max_attempts,
      maxConns: b.max_conns,
      requestTimeoutMs: config.request_timeout,
      failureCooldownMs: b.failure_cooldown,
      maxHeaderBytes: config.max_header_kb * 1024,
      balancing: config.balancing_algorithm,
      stickyCookieNames: config.sticky_cookie_names,
      secureCookies: config.secure_cookies,
      stickyAuthNegotiate: config.sticky_sessions_for_auth_negotiate,
      forwardedClientCert: config.forwarded_client_cert,
      forwardedProto: {
        sanitize: config.sanitize_forwarded_proto,
        forceHttps: config.force_forwarded_proto_https,
      },
      tracing: {
        w3c: config.tracing.enable_w3c,
        zipkin: config.tracing.enable_zipkin,
        w3cTenantId: config.tracing.w3c_tenant_id,
      },
    },
  });

  // Skip building debug fields per registration unless they can be written.
  const debugLog = deps.logger !== undefined || config.log_level === "debug";
  const apply = (
    action: "register" | "unregister",
    msg: RegistryMessage,
    source = "http",
  ) => {
    const r = action === "register"
      ? registry.register(msg, clock.now())
      : registry.unregister(msg);
    stats.accepted(source, action);
    if (debugLog && (r.added > 0 || r.removed > 0)) {
      logger.debug(action === "register" ? "route-added" : "route-removed", {
        source,
        endpoint: `${msg.host}:${msg.tls_port || msg.port}`,
        uris: msg.uris,
      });
    }
  };

  const servers: ClientListener[] = [];
  let api: ApiServer | undefined;
  let source: RouteSource | undefined;
  let loops: Loops | undefined;
  let certWatch: RouterCertWatch | undefined;
  let draining = false;
  let stopping: Promise<void> | undefined;
  const skip = Promise.withResolvers<void>();
  const stop = (graceMs: number, waitMs: number) => {
    draining = true;
    if (waitMs <= 0) skip.resolve();
    return stopping ??= shutdown({
      clock,
      logger,
      servers,
      api: api?.server,
      inflight: () => handler.inflight,
      stopLoops: () => {
        void certWatch?.close();
        return loops?.stop();
      },
      closeUpgrades: () => handler.closeUpgrades(),
      closeBackends: () => transports.closeAll(),
      closeRest: async () => {
        crl?.close();
        await source?.bus.close();
        api?.verifier.close();
        await accessLog?.close();
      },
    }, { waitMs, graceMs, skipWait: skip.promise });
  };

  try {
    const listenOpts = {
      reusePort: config.reuse_port,
      logger,
      clock,
      counters: stats,
      limits: {
        readHeaderTimeoutMs: config.read_header_timeout,
        idleTimeoutMs: config.idle_timeout,
        maxConnections: config.max_connections,
        maxHeaderBytes: config.max_header_kb * 1024,
      },
      closing: () => draining,
    };
    servers.push(
      await serveClients(config.listen, handler.handle, {
        ...listenOpts,
        proto: "http",
        setting: "router.listen",
      }),
    );
    if (config.https) {
      servers.push(
        await serveClients(config.https.listen, handler.handle, {
          ...listenOpts,
          proto: "https",
          setting: "router.https.listen",
          tls: { cert: files.httpsCert!, key: files.httpsKey! },
        }),
      );
    }
    const port = servers[0]!.addr.port;
    const httpsPort = servers[1]?.addr.port;

    if (config.api.enabled) {
      api = await startApi({
        api: config.api,
        files: {
          publicKey: files.publicKey,
          caBundle: files.caBundle,
          cert: files.apiCert,
          key: files.apiKey,
        },
        registry,
        stats,
        logger,
        clock,
        apply,
        healthy: () => !draining,
        status: (host) =>
          routerStatus(
            {
              registry,
              events,
              probeStaleTls: config.probe_stale_tls,
              mtls: () => currentTls.cert !== undefined,
              nats: () => ({
                configured: source !== undefined,
                connected: source?.bus.connected ?? false,
                servers: (config.nats?.servers ?? []).map(redactUrl),
              }),
              certificates: () => [
                { role: "api", pem: files.apiCert },
                { role: "https", pem: files.httpsCert },
                { role: "backend client", pem: currentTls.cert },
                { role: "backend CA", pem: currentTls.ca },
              ],
            },
            host,
            clock.now(),
          ),
      });
    }

    if (config.nats) {
      source = await connectRouteSource({
        config,
        nats: config.nats,
        ca: files.natsCa,
        registry,
        stats,
        clock,
        logger,
        apply,
        connect: deps.connectNats,
      });
    }

    loops = startLoops({
      clock,
      logger,
      prune: createPruner({
        registry,
        transports,
        stats,
        logger,
        clock,
        probeStaleTls: config.probe_stale_tls,
        events,
        suspended: () =>
          !!config.nats?.suspend_pruning_if_nats_unavailable &&
          !(source?.up ?? false),
      }),
      pruneIntervalMs: config.prune_interval,
      sweepRequests: (now) => handler.sweep(now),
      requestTimeoutMs: config.request_timeout,
      sweepIdle: (now) => transports.sweepIdle(now),
      idleSweepIntervalMs: transports.sweepIntervalMs,
    });

    const reloadBackend = async () => {
      currentTls = await loadBackendTls(b, read);
      transports.setTls(currentTls);
      // Fresh agents with the new material; the old ones finish their
      // requests, then close.
      for (const pool of registry.pools()) {
        for (const ep of pool.endpoints) transports.release(ep);
      }
      logger.info("backend-tls-reloaded", {});
      return currentTls.cert;
    };
    const apiServer = api;
    certWatch = new RouterCertWatch({
      config,
      read,
      clock,
      logger,
      registry: stats.registry,
      initial: {
        backend: currentTls.cert !== undefined && currentTls.key !== undefined
          ? { cert: currentTls.cert, key: currentTls.key }
          : undefined,
        api: files.apiCert !== undefined && files.apiKey !== undefined
          ? { cert: files.apiCert, key: files.apiKey }
          : undefined,
        httpsCert: files.httpsCert,
      },
      reloadBackend,
      swapApi: apiServer && files.apiCert !== undefined
        ? async (pair) => {
          await apiServer.swapTls(pair);
          files.apiCert = pair.cert;
          files.apiKey = pair.key;
        }
        : undefined,
    });
    certWatch.start();

    logger.info("router-started", {
      port,
      https_port: httpsPort,
      api_port: api?.port,
      api_tls: config.api.enabled && config.api.cert !== undefined,
      nats: config.nats !== undefined,
      nats_tls: config.nats?.tls_ca !== undefined,
      backends_mode: b.mode,
      route_services: config.route_services_secret !== undefined,
    });

    return {
      port,
      httpsPort,
      apiPort: api?.port,
      registry,
      metrics: () => stats.render(),
      apply,
      pruneNow: () => loops!.pruneNow(),
      async reload() {
        // The CA file is not watched: reload the backend material always.
        await reloadBackend();
        await certWatch!.check();
      },
      async drain(
        timeoutMs = config.drain_timeout,
        waitMs = config.drain_wait,
      ) {
        if (!draining) {
          logger.info("router-draining", {
            wait_ms: waitMs,
            timeout_ms: timeoutMs,
            inflight: handler.inflight,
          });
        }
        await stop(timeoutMs, waitMs);
      },
      close: () => stop(0, 0),
    };
  } catch (err) {
    await stop(0, 0);
    throw err;
  }
}

/** Reads `backends.crl.ca_bundle` and loads the CRL once (failures are logged). */
async function startBackendCrl(
  c: NonNullable<RouterSection["backends"]["crl"]>,
  read: (path: string) => Promise<string>,
  d: {
    clock: Clock;
    logger: Logger;
    metrics: MetricsRegistry;
    fetch?: typeof fetch;
  },
): Promise<CrlWatcher> {
  let caBundle: string | undefined;
  if (c.ca_bundle !== undefined) {
    try {
      caBundle = await read(c.ca_bundle);
    } catch (err) {
      throw new RouterError(
        "ERR_ROUTER_FILE",
        `Cannot read router.backends.crl.ca_bundle "${c.ca_bundle}": ${
          describeError(err)
        }`,
        { cause: err },
      );
    }
  }
  const crl = new CrlWatcher({
    url: c.url,
    caBundle,
    refreshMs: c.refresh,
    timeoutMs: c.timeout,
    holder: "router",
    logger: d.logger,
    metrics: d.metrics,
    clock: d.clock,
    fetch: d.fetch,
  });
  await crl.start();
  return crl;
}

/**
 * Wiring of the router: listeners, registry, registration sources (HTTP API,
 * NATS), the prune loop with liveness probes, drain and close.
 * @module
 */
import type { Clock, TimerId } from "../common/mod.ts";
import { describeError, systemClock } from "../common/mod.ts";
import type { RouterSection } from "../config/mod.ts";
import { isLoopback } from "../config/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { createLogger } from "../observe/mod.ts";
import {
  certificateMatchesKey,
  parseCertificate,
  splitCertificates,
} from "../pki/mod.ts";
import { NatsRouteBus, redactUrl } from "../routes/mod.ts";
import type { NatsRouteBusOptions, RegistryMessage } from "../routes/mod.ts";
import { RouterError } from "./errors.ts";
import { createAccessLog } from "./_access_log.ts";
import type { AccessLog } from "./_access_log.ts";
import { createApiApp } from "./_api.ts";
import { createTokenVerifier } from "../token/mod.ts";
import type { TokenVerifier } from "../token/mod.ts";
import { createProxyHandler } from "./_proxy.ts";
import { oneSegment } from "../common/mod.ts";
import { Registry } from "./_registry.ts";
import { RouterStats } from "./_stats.ts";
import { Transports } from "./_transport.ts";
import { createPruner } from "./_prune.ts";
import { RouteEvents } from "./_events.ts";
import { routerStatus } from "./_status.ts";
import type { BackendDialer, BackendTls } from "./_transport.ts";

const REUSE_PORT_NEEDS_FLAG =
  'reuse_port needs Deno\'s --unstable-net flag (deno run --unstable-net ..., or "unstable": ["net"] in deno.json)';

/**
 * Whether Deno runs with `--unstable-net`, which `Deno.serve({ reusePort })`
 * needs in Deno 2.9: `Deno.listenDatagram` exists only then.
 */
function unstableNetEnabled(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram ===
    "function";
}

/** The subset of the NATS bus the router uses. */
export interface RouteBusLike {
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Injected dependencies of {@linkcode startRouter}. */
export interface RouterDeps {
  /** Time source for pruning and registration times. @default {systemClock} */
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
  /** Re-reads the backend CA and client certificate; new connections use them. */
  reload(): Promise<void>;
  /**
   * Stops accepting, lets in-flight requests finish for up to `timeoutMs`,
   * then closes everything.
   */
  drain(timeoutMs?: number): Promise<void>;
  /** Closes listeners, backend connections, NATS and timers at once. */
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
  if (config.reuse_port && !unstableNetEnabled()) {
    // Deno would exit the whole process (status 70) inside Deno.serve.
    throw new RouterError(
      "ERR_ROUTER_LISTEN",
      `Cannot listen on ${config.listen.hostname}:${config.listen.port}: ${REUSE_PORT_NEEDS_FLAG}`,
    );
  }

  const readFile = async (path: string | undefined, what: string) => {
    if (path === undefined) return undefined;
    try {
      return await read(path);
    } catch (err) {
      throw new RouterError(
        "ERR_ROUTER_FILE",
        `Cannot read ${what} "${path}": ${describeError(err)}`,
        { cause: err },
      );
    }
  };
  const loadTls = async (): Promise<BackendTls> => {
    const material: BackendTls = {
      ca: await readFile(b.ca, "backend CA"),
      cert: await readFile(b.cert, "backend client certificate"),
      key: await readFile(b.key, "backend client key"),
    };
    // node:tls in Deno 2.9 accepts garbage here and fails only per
    // connection, which would prune every TLS endpoint: check up front, so
    // start fails and a reload keeps the material it has.
    const unusable = (what: string, path: string | undefined, why: string) =>
      new RouterError(
        "ERR_ROUTER_BACKEND_TLS",
        `Cannot use ${what} "${path}": ${why}`,
      );
    const parses = (pem: string, what: string, path: string | undefined) => {
      try {
        parseCertificate(pem);
      } catch (err) {
        throw unusable(what, path, describeError(err));
      }
    };
    if (material.ca !== undefined) {
      const cas = splitCertificates(material.ca);
      if (cas.length === 0) {
        throw unusable("backend CA", b.ca, "it holds no PEM certificate");
      }
      for (const c of cas) parses(c, "backend CA", b.ca);
    }
    if (material.cert !== undefined && material.key !== undefined) {
      parses(material.cert, "backend client certificate", b.cert);
      const matches = await certificateMatchesKey(material.cert, material.key)
        .catch((err) => {
          throw unusable("backend client key", b.key, describeError(err));
        });
      if (!matches) {
        throw unusable(
          "backend client key",
          b.key,
          `it does not match the certificate "${b.cert}"`,
        );
      }
    }
    return material;
  };
  const backendTls = await loadTls();
  if (backendTls.ca === undefined) {
    logger.warn("backend-ca-missing", {
      detail: "TLS endpoints are verified against the system trust store",
    });
  }
  const publicKey = config.api.enabled
    ? await readFile(config.api.public_key_file, "token public key")
    : undefined;
  const caBundle = config.api.enabled
    ? await readFile(config.api.ca_bundle, "JWKS CA bundle")
    : undefined;
  const apiCert = config.api.enabled
    ? await readFile(config.api.cert, "API certificate")
    : undefined;
  const apiKey = config.api.enabled
    ? await readFile(config.api.key, "API key")
    : undefined;
  const natsCa = await readFile(config.nats?.tls_ca, "NATS CA bundle");
  const httpsCert = await readFile(config.https?.cert, "HTTPS certificate");
  const httpsKey = await readFile(config.https?.key, "HTTPS key");

  const transports = new Transports({
    tls: backendTls,
    maxConns: b.max_conns,
    maxIdle: b.max_idle_conns,
    idleTimeoutMs: b.idle_timeout,
    dialTimeoutMs: b.dial_timeout,
    handshakeTimeoutMs: b.tls_handshake_timeout,
    clock,
    dial: deps.dialBackend,
  });
  const registry = new Registry({
    staleThresholdMs: config.stale_threshold,
    onRemove: (ep) => transports.release(ep),
  });
  const stats = new RouterStats(() => ({
    routes: registry.routeCount,
    endpoints: registry.endpointCount,
  }));
  const accessLog: AccessLog | undefined = config.access_log.enabled
    ? await createAccessLog({
      file: config.access_log.file,
      sink: deps.accessLogSink,
    })
    : undefined;

  const events = new RouteEvents();
  let currentTls = backendTls;
  const handler = createProxyHandler({
    events,
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

  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  let apiServer: Deno.HttpServer<Deno.NetAddr> | undefined;
  let draining = false;
  let bus: RouteBusLike | undefined;
  let verifier: TokenVerifier | undefined;
  let pruneTimer: TimerId | undefined;
  let sweepTimer: ReturnType<typeof setInterval> | undefined;
  let idleTimer: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  const closeAll = async (graceMs: number) => {
    if (closed) return;
    closed = true;
    draining = true;
    if (pruneTimer !== undefined) clock.clearTimeout(pruneTimer);
    if (sweepTimer !== undefined) clearInterval(sweepTimer);
    if (idleTimer !== undefined) clearInterval(idleTimer);
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((
      r,
    ) => (graceTimer = setTimeout(r, graceMs)));
    await Promise.race([
      Promise.all(servers.map((s) => s.shutdown().catch(() => {}))),
      grace,
    ]);
    // Whatever still runs (streams, WebSockets) ends with its backend.
    handler.closeUpgrades();
    transports.closeAll();
    await Promise.all(servers.map((s) => s.finished.catch(() => {})));
    // The API goes last, so /healthz says "draining" while requests finish.
    await apiServer?.shutdown().catch(() => {});
    clearTimeout(graceTimer);
    await bus?.close();
    verifier?.close();
    await accessLog?.close();
    logger.info("router-stopped", {});
  };

  try {
    const listen = (
      addr: { hostname: string; port: number },
      proto: string,
      tlsOpts?: { cert: string; key: string },
    ) => {
      let server: Deno.HttpServer<Deno.NetAddr>;
      try {
        server = Deno.serve(
          {
            hostname: addr.hostname,
            port: addr.port,
            // Only pass the flag when asked: Deno 2.9 treats it as unstable.
            ...(config.reuse_port ? { reusePort: true } : {}),
            onListen: () => {},
            onError: (err) => {
              logger.error("request-failed", { error: describeError(err) });
              return new Response("500 Internal Server Error\n", {
                status: 500,
              });
            },
            ...tlsOpts,
          },
          tlsOpts
            ? async (req, info) =>
              oneSegment(await handler.handle(req, info, proto))
            : (req, info) => handler.handle(req, info, proto),
        );
      } catch (err) {
        const where = `${addr.hostname}:${addr.port}`;
        const why = err instanceof Deno.errors.AddrInUse
          ? "address already in use"
          : /unstable-net/.test(String(err))
          ? REUSE_PORT_NEEDS_FLAG
          : describeError(err);
        throw new RouterError(
          "ERR_ROUTER_LISTEN",
          `Cannot listen on ${where}: ${why}`,
          { cause: err },
        );
      }
      servers.push(server);
      return server.addr.port;
    };
    const port = listen(config.listen, "http");
    const httpsPort = config.https
      ? listen(config.https.listen, "https", {
        cert: httpsCert!,
        key: httpsKey!,
      })
      : undefined;

    let apiPort: number | undefined;
    if (config.api.enabled) {
      verifier = await createTokenVerifier({
        jwksUrl: config.api.jwks_url,
        caBundle,
        publicKey,
        issuer: config.api.issuer,
        audience: config.api.audience,
        requiredClaims: ["exp", "sub"],
        clock,
      }).catch((err) => {
        throw new RouterError(
          "ERR_ROUTER_AUTH_CONFIG",
          "Cannot load the token-verification key: expected a P-256 public key as JWK, JWKS or PEM SPKI",
          { cause: err },
        );
      });
      const app = createApiApp({
        registry,
        stats,
        logger,
        clock,
        verifier,
        maxBodyBytes: config.api.max_body_bytes,
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
                configured: bus !== undefined,
                connected: bus?.connected ?? false,
                servers: (config.nats?.servers ?? []).map(redactUrl),
              }),
              certificates: () => [
                { role: "api", pem: apiCert },
                { role: "https", pem: httpsCert },
                { role: "backend client", pem: currentTls.cert },
                { role: "backend CA", pem: currentTls.ca },
              ],
            },
            host,
            clock.now(),
          ),
      });
      const apiTls = apiCert !== undefined && apiKey !== undefined
        ? { cert: apiCert, key: apiKey }
        : undefined;
      let api: Deno.HttpServer<Deno.NetAddr>;
      try {
        api = Deno.serve(
          {
            hostname: config.api.listen.hostname,
            port: config.api.listen.port,
            onListen: () => {},
            ...apiTls,
          },
          // Over TLS, stream the body (see oneSegment) or each keep-alive
          // response waits ~40 ms for the client's delayed ACK.
          apiTls ? async (req) => oneSegment(await app.fetch(req)) : app.fetch,
        );
      } catch (err) {
        const where = `${config.api.listen.hostname}:${config.api.listen.port}`;
        const why = err instanceof Deno.errors.AddrInUse
          ? "address already in use"
          : describeError(err);
        throw new RouterError(
          "ERR_ROUTER_LISTEN",
          `Cannot listen on ${where} for the registration API: ${why}`,
          { cause: err },
        );
      }
      apiServer = api;
      apiPort = api.addr.port;
      if (!apiTls && !isLoopback(config.api.listen.hostname)) {
        logger.warn("api-plaintext", {
          listen: `${config.api.listen.hostname}:${apiPort}`,
          detail:
            "the registration API takes bearer tokens over plain HTTP on a non-loopback address; set api.cert and api.key",
        });
      }
    }

    let natsUp = true;
    if (config.nats) {
      natsUp = false;
      const connect = deps.connectNats ??
        ((o: NatsRouteBusOptions) => NatsRouteBus.connect(o));
      let everUp = false;
      bus = await connect({
        servers: config.nats.servers,
        name: "sigil-router",
        ...(natsCa !== undefined ? { tls: { ca: natsCa } } : {}),
        routerId: config.id,
        hosts: config.listen.hostname === "0.0.0.0"
          ? []
          : [config.listen.hostname],
        minimumRegisterIntervalInSeconds: Math.round(
          config.register_interval / 1000,
        ),
        pruneThresholdInSeconds: Math.round(config.stale_threshold / 1000),
        onRegister: (m) => apply("register", m, "nats"),
        onUnregister: (m) => apply("unregister", m, "nats"),
        onInvalid: (reason, _err, subject) =>
          stats.registryMessages.inc({
            source: "nats",
            action: subject.endsWith("unregister") ? "unregister" : "register",
            result: reason,
          }),
        onStatus: (connected) => {
          natsUp = connected;
          // Registrations could not arrive while NATS was down: give every
          // endpoint a fresh threshold rather than prune it for our outage.
          if (connected && everUp) registry.refreshAll(clock.now());
          if (connected) everUp = true;
        },
        logger: logger.child("routes"),
        clock,
      });
    }

    const pruneCycle = createPruner({
      registry,
      transports,
      stats,
      logger,
      clock,
      probeStaleTls: config.probe_stale_tls,
      events,
      suspended: () =>
        !!config.nats?.suspend_pruning_if_nats_unavailable && !natsUp,
    });
    let cycle: Promise<void> = Promise.resolve();
    const schedulePrune = () => {
      pruneTimer = clock.setTimeout(() => {
        cycle = pruneCycle().catch((err) =>
          logger.error("prune-failed", { error: describeError(err) })
        ).finally(() => {
          if (!closed) schedulePrune();
        });
      }, config.prune_interval);
    };
    schedulePrune();
    const sweepEvery = Math.max(50, Math.min(1000, config.request_timeout / 4));
    const sweep = setInterval(
      () => handler.sweep(clock.now()),
      sweepEvery,
    );
    Deno.unrefTimer(sweep as unknown as number);
    sweepTimer = sweep;
    const idle = setInterval(
      () => transports.sweepIdle(clock.now()),
      transports.sweepIntervalMs,
    );
    Deno.unrefTimer(idle as unknown as number);
    idleTimer = idle;

    logger.info("router-started", {
      port,
      https_port: httpsPort,
      api_port: apiPort,
      api_tls: config.api.enabled && config.api.cert !== undefined,
      nats: config.nats !== undefined,
      nats_tls: config.nats?.tls_ca !== undefined,
      backends_mode: b.mode,
    });

    return {
      port,
      httpsPort,
      apiPort,
      registry,
      metrics: () => stats.render(),
      apply,
      async pruneNow() {
        await cycle;
        await pruneCycle();
      },
      async reload() {
        currentTls = await loadTls();
        transports.setTls(currentTls);
        // Fresh agents with the new material; the old ones finish their
        // requests, then close.
        for (const pool of registry.pools()) {
          for (const ep of pool.endpoints) transports.release(ep);
        }
        logger.info("backend-tls-reloaded", {});
      },
      async drain(timeoutMs = config.drain_timeout) {
        logger.info("router-draining", {
          timeout_ms: timeoutMs,
          inflight: handler.inflight,
        });
        await closeAll(timeoutMs);
      },
      close: () => closeAll(0),
    };
  } catch (err) {
    await closeAll(0);
    throw err;
  }
}

/**
 * `startProxy()`: the wiring of the proxy. Each part lives in its own file:
 * `_instance.ts` loads an instance's credentials and binds its listeners
 * (`_listener.ts` is the data path), `_admin_server.ts` binds the admin API
 * (`_admin.ts`), `_watch.ts` watches the credential files,
 * `_registration.ts` starts the route heartbeats, and `_shutdown.ts` stops
 * it all in order.
 * @module
 */
import { systemClock } from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import { formatAddress } from "../config/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { createAdminApp } from "./_admin.ts";
import { serveAdmin } from "./_admin_server.ts";
import { InstanceRuntime } from "./_instance.ts";
import type { ReloadOutcome } from "./_instance.ts";
import type { ListenerStats } from "./_listener.ts";
import { ProxyMetrics } from "./_metrics.ts";
import type { NamedSink, RegisterConfig, RouteRegistrar } from "./_register.ts";
import { startRegistration } from "./_registration.ts";
import { drainAndRelease } from "./_shutdown.ts";
import type { ProxyParts } from "./_shutdown.ts";
import { CredentialWatcher } from "./_watch.ts";
import { CrlWatcher } from "../revocation/mod.ts";
import { describeError } from "../common/mod.ts";
import { CredentialsError } from "./errors.ts";
import { certInfo, configDump, metricCollectors, readiness } from "./_views.ts";
import type { ServedCertInfo } from "./_views.ts";

export type { ServedCertInfo };

/** Injected dependencies of {@linkcode startProxy}. */
export interface ProxyDeps {
  /** Time for validity checks, reload polls and the registration heartbeat. @default {systemClock} */
  clock?: Clock;
  /** @default {createLogger("proxy")} */
  logger?: Logger;
  /** Random source for heartbeat jitter. @default {Math.random} */
  random?: () => number;
  /**
   * Builds the registration targets of an instance. @default {an
   * `HttpRouteSink` per router URL and a `NatsRouteBus` for `nats`}
   */
  sinks?: (
    instance: string,
    register: RegisterConfig,
  ) => NamedSink[] | Promise<NamedSink[]>;
  /** Watch credential files (events and poll). @default {true} */
  watch?: boolean;
  /** Serve the admin API on `admin_listen`. @default {true} */
  admin?: boolean;
  /** Fetch for `crl.url`. @default {fetch trusting crl.ca_bundle} */
  fetch?: typeof fetch;
}

/** A bound listener, as reported by {@linkcode RunningProxy.instances}. */
export interface BoundListener {
  name: string;
  /** The bound TLS port (the real one when the config says port 0). */
  port: number;
  listen: string;
  app: string;
}

/** `/stats` body. */
export interface ProxyStats {
  instances: Array<{
    id: string;
    mode: "tls" | "mtls";
    listeners: ListenerStats[];
  }>;
}

/** Options for {@linkcode RunningProxy.close}. */
export interface CloseOptions {
  /** How long live connections may finish. @default {the config's drain_timeout} */
  drainTimeoutMs?: number;
}

/** A started proxy. */
export interface RunningProxy {
  /** Bound admin port (`undefined` when the admin API is off). */
  readonly adminPort: number | undefined;
  /** Instances with their bound listeners. */
  readonly instances: ReadonlyArray<{ id: string; listeners: BoundListener[] }>;
  /**
   * The bound port of a listener.
   * @param instance Instance id.
   * @param listener Listener name or index. @default {0}
   */
  port(instance: string, listener?: string | number): number;
  /** Reloads every instance's credentials now (like SIGHUP). */
  reload(): Promise<ReloadOutcome[]>;
  stats(): ProxyStats;
  certs(): ServedCertInfo[];
  /** True when every listener is bound and every app port accepts TCP. */
  ready(): Promise<boolean>;
  /** Prometheus text. */
  metrics(): string;
  /**
   * Unregisters routes, stops accepting, lets live connections finish up to
   * the drain timeout, then cuts the rest and releases everything.
   */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * Starts the proxy: loads every instance's credentials, binds every listener,
 * then starts the admin API, the credential watcher and route registration.
 *
 * @param config The resolved `proxy` config section.
 * @param deps Clock, logger, registration targets (tests pass fakes).
 * @returns The running proxy.
 * @throws {CredentialsError} When an instance's credentials cannot be loaded at start.
 * @throws {ListenError} When a listener or the admin API cannot bind.
 *
 * @example
 * ```ts ignore
 * import { parseConfig } from "../config/mod.ts";
 * import { startProxy } from "./mod.ts";
 * const cfg = parseConfig(await Deno.readTextFile("sigil.yaml")).proxy!;
 * const proxy = await startProxy(cfg);
 * console.log(proxy.port(proxy.instances[0]!.id));
 * await proxy.close();
 * ```
 */
export async function startProxy(
  config: ProxySection,
  deps: ProxyDeps = {},
): Promise<RunningProxy> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger("proxy");
  const metrics = new ProxyMetrics();
  metrics.watchExpiry(logger, clock);
  const parts: ProxyParts & {
    instances: InstanceRuntime[];
    registrars: RouteRegistrar[];
  } = {
    logger,
    instances: [],
    registrars: [],
    watcher: undefined,
    admin: undefined,
  };

  // The CRL before the listeners, so the first handshake is checked.
  const crl = config.crl
    ? await startCrl(config.crl, { clock, logger, metrics, fetch: deps.fetch })
    : undefined;
  const isRevoked = crl ? (s: string) => crl.isRevoked(s) : undefined;
  crl?.onChange(() => {
    for (const i of parts.instances) {
      for (const l of i.listeners) l.cutRevoked();
    }
  });

  // Every instance's credentials and listeners first: a proxy that cannot
  // serve one of them does not start.
  try {
    for (const ic of config.instances) {
      const inst = new InstanceRuntime(ic, {
        section: config,
        clock,
        logger,
        metrics,
        isRevoked,
      });
      parts.instances.push(inst);
      await inst.start();
    }
  } catch (err) {
    crl?.close();
    await drainAndRelease(parts, 0);
    metrics.closeExpiry();
    throw err;
  }
  const { instances } = parts;
  metrics.setCollectors(metricCollectors(instances));

  const reloadAll = (force: boolean) =>
    Promise.all(instances.map((i) => i.reload(force)));
  let closing: Promise<void> | undefined;
  const proxy: RunningProxy = {
    get adminPort() {
      return parts.admin?.addr.port;
    },
    get instances() {
      return instances.map((i) => ({
        id: i.id,
        listeners: i.listeners.map((l) => ({
          name: l.options.name,
          port: l.port,
          listen: formatAddress(l.options.listen),
          app: formatAddress(l.options.app),
        })),
      }));
    },
    port(instance, listener = 0) {
      const inst = instances.find((i) => i.id === instance);
      const l = typeof listener === "number"
        ? inst?.listeners[listener]
        : inst?.listeners.find((x) => x.options.name === listener);
      if (!l) {
        throw new RangeError(
          `No listener "${listener}" for instance "${instance}"`,
        );
      }
      return l.port;
    },
    reload: () => reloadAll(true),
    stats: () => ({
      instances: instances.map((i) => ({
        id: i.id,
        mode: i.config.mode,
        listeners: i.listeners.map((l) => l.stats()),
      })),
    }),
    certs: () => instances.map((i) => certInfo(i)),
    ready: async () => (await readiness(instances, config)).ok,
    metrics: () => metrics.render(),
    close(options = {}) {
      closing ??= (async () => {
        logger.info("proxy-stopping", {});
        await drainAndRelease(
          parts,
          options.drainTimeoutMs ?? config.drain_timeout,
        );
        metrics.closeExpiry();
        crl?.close();
        logger.info("proxy-stopped", {});
      })();
      return closing;
    },
  };

  // Then what runs around them: the admin API, the credential watcher and
  // route registration.
  try {
    if (deps.admin !== false) {
      parts.admin = serveAdmin(
        config,
        createAdminApp({
          stats: () => proxy.stats(),
          certs: () => proxy.certs(),
          configDump: () => configDump(config, instances),
          ready: () => readiness(instances, config),
          metrics: () => metrics.render(),
        }).fetch,
      );
    }
    if (deps.watch !== false) {
      parts.watcher = new CredentialWatcher({
        files: instances.flatMap((i) => i.watchedFiles),
        onCheck: () => void reloadAll(false),
        pollIntervalMs: config.reload_poll_interval,
        debounceMs: config.reload_debounce,
        clock,
        logger,
      });
      parts.watcher.start();
    }
    await startRegistration(instances, {
      clock,
      logger,
      random: deps.random ?? Math.random,
      metrics,
      tokenWarnMs: config.expiry_warning.token,
      sinks: deps.sinks,
    }, parts.registrars);
  } catch (err) {
    await proxy.close({ drainTimeoutMs: 0 });
    throw err;
  }
  logger.info("proxy-started", {
    admin: parts.admin === undefined
      ? undefined
      : `${config.admin_listen.hostname}:${parts.admin.addr.port}`,
    instances: instances.length,
    listeners: instances.reduce((n, i) => n + i.listeners.length, 0),
  });
  return proxy;
}

/** Reads `crl.ca_bundle` and loads the CRL once (a failed fetch is logged). */
async function startCrl(
  c: NonNullable<ProxySection["crl"]>,
  d: {
    clock: Clock;
    logger: Logger;
    metrics: ProxyMetrics;
    fetch?: typeof fetch;
  },
): Promise<CrlWatcher> {
  let caBundle: string | undefined;
  if (c.ca_bundle !== undefined) {
    try {
      caBundle = await Deno.readTextFile(c.ca_bundle);
    } catch (err) {
      throw new CredentialsError(
        "ERR_PROXY_TRUST_INVALID",
        `Cannot read proxy.crl.ca_bundle "${c.ca_bundle}": ${
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
    holder: "proxy",
    logger: d.logger,
    metrics: d.metrics.registry,
    clock: d.clock,
    fetch: d.fetch,
  });
  await crl.start();
  return crl;
}

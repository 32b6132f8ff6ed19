/**
 * `startProxy()`: every instance's listeners, credential reload, the admin
 * API and route registration, in one process.
 * @module
 */
import {
  describeError,
  describeListenError,
  formatDuration,
  systemClock,
} from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import { ConfigError, formatAddress } from "../config/mod.ts";
import type { ProxySection } from "../config/mod.ts";
import { createLogger } from "../observe/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { NatsRouteBus, redactUrl } from "../routes/mod.ts";
import { createAdminApp } from "./_admin.ts";
import { ListenError, RegistrationError } from "./errors.ts";
import { HttpRouteSink } from "./_http_sink.ts";
import { InstanceRuntime } from "./_instance.ts";
import type { ReloadOutcome } from "./_instance.ts";
import type { ListenerStats } from "./_listener.ts";
import { ProxyMetrics } from "./_metrics.ts";
import { checkSanPattern } from "./_peer.ts";
import { buildRegistryMessage, RouteRegistrar } from "./_register.ts";
import type { NamedSink, RegisterConfig } from "./_register.ts";
import { CredentialWatcher } from "./_watch.ts";
import { certInfo, configDump, readiness } from "./_views.ts";
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
 * @throws {ConfigError} When an `allowed_client_sans` pattern is unusable.
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
  const random = deps.random ?? Math.random;
  const metrics = new ProxyMetrics();
  checkPatterns(config);

  const instances: InstanceRuntime[] = [];
  const registrars: RouteRegistrar[] = [];
  let watcher: CredentialWatcher | undefined;
  let admin: Deno.HttpServer | undefined;
  let adminPort: number | undefined;
  let closing: Promise<void> | undefined;

  const releaseAll = async (drainTimeoutMs: number) => {
    await Promise.allSettled(registrars.map((r) => r.stop()));
    const listeners = instances.flatMap((i) => i.listeners);
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
    await watcher?.close();
    await admin?.shutdown();
  };

  try {
    for (const ic of config.instances) {
      const inst = new InstanceRuntime(ic, {
        section: config,
        clock,
        logger,
        metrics,
      });
      instances.push(inst);
      await inst.start();
    }
  } catch (err) {
    await releaseAll(0);
    throw err;
  }

  metrics.setCollectors({
    active: () =>
      instances.flatMap((i) =>
        i.listeners.map((l) =>
          [
            { instance: i.id, listener: l.options.name },
            l.active,
          ] as [Record<string, string>, number]
        )
      ),
    liveBytes: () =>
      instances.flatMap((i) =>
        i.listeners.flatMap((l) => {
          const b = l.liveBytes();
          const base = { instance: i.id, listener: l.options.name };
          return [
            [{ ...base, direction: "client_to_app" }, b.in],
            [{ ...base, direction: "app_to_client" }, b.out],
          ] as Array<[Record<string, string>, number]>;
        })
      ),
    certs: () =>
      instances.map((i) => ({
        instance: i.id,
        serial: i.credentials.serial,
        notAfter: i.credentials.notAfter,
        notBefore: i.credentials.notBefore,
      })),
  });

  const reloadAll = (force: boolean) =>
    Promise.all(instances.map((i) => i.reload(force)));

  const proxy: RunningProxy = {
    get adminPort() {
      return adminPort;
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
        await releaseAll(options.drainTimeoutMs ?? config.drain_timeout);
        logger.info("proxy-stopped", {});
      })();
      return closing;
    },
  };

  try {
    if (deps.admin !== false) {
      const app = createAdminApp({
        stats: () => proxy.stats(),
        certs: () => proxy.certs(),
        configDump: () => configDump(config, instances),
        ready: () => readiness(instances, config),
        metrics: () => metrics.render(),
      });
      admin = serveAdmin(config, app.fetch);
      adminPort = (admin.addr as Deno.NetAddr).port;
    }
    if (deps.watch !== false) {
      watcher = new CredentialWatcher({
        files: instances.flatMap((i) => i.watchedFiles),
        onCheck: () => void reloadAll(false),
        pollIntervalMs: config.reload_poll_interval,
        debounceMs: config.reload_debounce,
        clock,
        logger,
      });
      watcher.start();
    }
    for (const inst of instances) {
      const reg = inst.config.register;
      if (!reg) continue;
      const sinks = deps.sinks
        ? await deps.sinks(inst.id, reg)
        : await defaultSinks(reg, clock, logger);
      const listenerIdx = typeof reg.tls_listener === "number"
        ? reg.tls_listener
        : inst.listeners.findIndex((l) => l.options.name === reg.tls_listener);
      const listener = inst.listeners[listenerIdx]!;
      const registrar = new RouteRegistrar({
        instance: inst.id,
        message: () =>
          buildRegistryMessage({
            instanceId: inst.id,
            app: inst.credentials.identity?.app,
            tlsPort: reg.advertised_tls_port ?? listener.port,
            register: reg,
          }),
        sinks,
        intervalMs: reg.interval,
        jitter: reg.jitter,
        clock,
        random,
        logger,
        metrics,
      });
      registrars.push(registrar);
      registrar.start();
      // A router that (re)starts announces itself on NATS; answer at once
      // (with route-emitter's jitter) instead of waiting for the heartbeat.
      for (const s of sinks) {
        if (s.sink instanceof NatsRouteBus) {
          s.sink.onRouterStart(() => registrar.registerNow());
        }
      }
    }
  } catch (err) {
    await proxy.close({ drainTimeoutMs: 0 });
    throw err;
  }
  logger.info("proxy-started", {
    admin: adminPort === undefined
      ? undefined
      : `${config.admin_listen.hostname}:${adminPort}`,
    instances: instances.length,
    listeners: instances.reduce((n, i) => n + i.listeners.length, 0),
  });
  return proxy;
}

function checkPatterns(config: ProxySection): void {
  const issues = [];
  for (const [i, inst] of config.instances.entries()) {
    for (const [j, p] of inst.allowed_client_sans.entries()) {
      const why = checkSanPattern(p);
      if (why) {
        issues.push({
          path: `proxy.instances.${i}.allowed_client_sans.${j}`,
          message: why,
        });
      }
    }
  }
  if (issues.length > 0) {
    throw new ConfigError(
      `Invalid config:\n${
        issues.map((x) => `  ${x.path}: ${x.message}`).join("\n")
      }`,
      issues,
    );
  }
}

async function defaultSinks(
  reg: RegisterConfig,
  clock: Clock,
  logger: Logger,
): Promise<NamedSink[]> {
  const sinks: NamedSink[] = reg.routers.map((r) => ({
    name: redactUrl(r.url),
    sink: new HttpRouteSink({
      url: r.url,
      tokenFile: r.token_file,
      caBundle: r.ca_bundle,
    }),
  }));
  if (reg.nats) {
    let ca: string | undefined;
    if (reg.nats.tls_ca !== undefined) {
      try {
        ca = await Deno.readTextFile(reg.nats.tls_ca);
      } catch (err) {
        throw new RegistrationError(
          `Cannot register routes over NATS: cannot read tls_ca "${reg.nats.tls_ca}": ${
            describeError(err)
          }`,
          { cause: err },
        );
      }
    }
    const bus = await NatsRouteBus.connect({
      servers: reg.nats.servers,
      name: "sigil-proxy",
      ...(ca !== undefined ? { tls: { ca } } : {}),
      clock,
      logger: logger.child("routes"),
    });
    sinks.push({ name: "nats", sink: bus });
  }
  return sinks;
}

function serveAdmin(
  config: ProxySection,
  handler: (req: Request) => Response | Promise<Response>,
): Deno.HttpServer {
  const { hostname, port } = config.admin_listen;
  try {
    return Deno.serve({
      hostname,
      port,
      onListen: () => {},
      onError: () => new Response("internal error", { status: 500 }),
    }, handler);
  } catch (err) {
    throw new ListenError(
      `Cannot listen on "${
        formatAddress(config.admin_listen)
      }" for the admin API (proxy.admin_listen): ${describeListenError(err)}`,
      { cause: err },
    );
  }
}

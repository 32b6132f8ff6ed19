/**
 * Starting route registration for the proxy's instances: the targets of each
 * `register` block (an `HttpRouteSink` per router URL, one `NatsRouteBus` for
 * `nats`) and one {@linkcode RouteRegistrar} heartbeat per instance.
 * @module
 */
import { describeError } from "../common/mod.ts";
import type { Clock } from "../common/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { NatsRouteBus, redactUrl } from "../routes/mod.ts";
import { RegistrationError } from "./errors.ts";
import { tokenExpiry } from "../token/mod.ts";
import { HttpRouteSink } from "./_http_sink.ts";
import type { InstanceRuntime } from "./_instance.ts";
import type { ProxyMetrics } from "./_metrics.ts";
import { buildRegistryMessage, RouteRegistrar } from "./_register.ts";
import type { NamedSink, RegisterConfig } from "./_register.ts";

/** What {@linkcode startRegistration} needs. */
export interface RegistrationOptions {
  clock: Clock;
  logger: Logger;
  random: () => number;
  metrics: ProxyMetrics;
  /** `expiry_warning.token`: warn this long before a router token expires. */
  tokenWarnMs?: number;
  /** Builds an instance's targets. @default {defaultSinks} */
  sinks?: (
    instance: string,
    register: RegisterConfig,
  ) => NamedSink[] | Promise<NamedSink[]>;
}

/**
 * Starts a heartbeat for every instance with a `register` block. Each
 * registrar is pushed to `into` as soon as it runs, so a failure part way
 * leaves the started ones there to be stopped.
 *
 * @throws {RegistrationError} When a target cannot be set up (NATS `tls_ca`).
 */
export async function startRegistration(
  instances: readonly InstanceRuntime[],
  o: RegistrationOptions,
  into: RouteRegistrar[],
): Promise<void> {
  for (const inst of instances) {
    const reg = inst.config.register;
    if (!reg) continue;
    const sinks = o.sinks
      ? await o.sinks(inst.id, reg)
      : await defaultSinks(reg, o.clock, o.logger, {
        instance: inst.id,
        metrics: o.metrics,
        tokenWarnMs: o.tokenWarnMs ?? 7 * 86_400_000,
      });
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
      clock: o.clock,
      random: o.random,
      logger: o.logger,
      metrics: o.metrics,
      // An expired certificate fails every router's handshake (526); offering
      // it again each heartbeat would re-add what the router just pruned.
      withheld: () => inst.expiry(),
    });
    into.push(registrar);
    inst.onRenewed(() => registrar.registerNow());
    registrar.start();
    // A router that (re)starts announces itself on NATS; answer at once
    // (with route-emitter's jitter) instead of waiting for the heartbeat.
    for (const s of sinks) {
      if (s.sink instanceof NatsRouteBus) {
        s.sink.onRouterStart(() => registrar.registerNow());
      }
    }
  }
}

/** The targets a `register` block names: each router URL, then NATS. */
async function defaultSinks(
  reg: RegisterConfig,
  clock: Clock,
  logger: Logger,
  watch: { instance: string; metrics: ProxyMetrics; tokenWarnMs: number },
): Promise<NamedSink[]> {
  const sinks: NamedSink[] = reg.routers.map((r) => {
    const router = redactUrl(r.url);
    return {
      name: router,
      sink: new HttpRouteSink({
        url: r.url,
        tokenFile: r.token_file,
        caBundle: r.ca_bundle,
        onToken: (token) => {
          const exp = tokenExpiry(token);
          const key = `${watch.instance} ${router}`;
          if (!exp) return watch.metrics.expiry?.tokens.forget(key);
          watch.metrics.expiry?.tokens.track(key, {
            labels: { instance: watch.instance, router },
            notAfter: exp.getTime(),
            warnAt: exp.getTime() - watch.tokenWarnMs,
            fields: { file: r.token_file },
          });
        },
      }),
    };
  });
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

/**
 * The rotator: one {@linkcode InstanceWorker} per configured instance, a
 * shared CA client, metrics, reload (new instances) and forced renewal.
 * @module
 */
import type { Clock } from "../common/mod.ts";
import { redactUrl, systemClock } from "../common/mod.ts";
import type { Address, RotatorSection } from "../config/mod.ts";
import { createLogger, ExpiryWatch } from "../observe/mod.ts";
import { readTokenFile } from "../common/mod.ts";
import { tokenExpiry } from "../token/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { CaEndpoints, createCaSigner } from "./_client.ts";
import type { Signer } from "./_client.ts";
import { RotatorMetrics, serveMetrics } from "./_metrics.ts";
import type { MetricsServer } from "./_metrics.ts";
import { InstanceWorker, sectionEntries } from "./_worker.ts";
import type {
  InstanceStatus,
  RotatorInstance,
  WorkerContext,
} from "./_worker.ts";
import { RotatorError } from "./errors.ts";

/** Injected dependencies of the rotator (all optional). */
export interface RotatorDeps {
  /** @default {systemClock} */
  clock?: Clock;
  /** @default {a JSON logger on stderr, component "rotator"} */
  logger?: Logger;
  /** Signs CSRs. @default {HTTPS to `ca_url`, trusting `ca_bundle`, token from `token_file`} */
  sign?: Signer;
  /** Reads the trust bundle. @default {reads `ca_bundle` on every use} */
  loadBundle?: () => Promise<string>;
  /** Uniform random numbers in [0, 1) for jitter. @default {Math.random} */
  random?: () => number;
  /** Metrics to publish into. @default {a new registry, prefix "sigil_rotator"} */
  metrics?: RotatorMetrics;
  /** fsync files and directories. @default {true} */
  sync?: boolean;
}

/** A running rotator. */
export interface RunningRotator {
  /** Resolves when every instance has a valid pair on disk (first issuance). */
  ready(instanceId?: string): Promise<void>;
  /** Forces renewal of every instance now. @returns ids that failed. */
  renewAll(): Promise<string[]>;
  /** Applies a new section: adds, updates and removes instances. */
  reload(section: RotatorSection): Promise<void>;
  /** Per-instance state. */
  status(): InstanceStatus[];
  /** Settles when no renewal or hook is running. */
  idle(): Promise<void>;
  /** The metrics listener's address, when `metrics_listen` is set. */
  readonly metricsAddress?: Address;
  readonly metrics: RotatorMetrics;
  /** Stops timers, waits for writes in progress, closes listeners. */
  close(): Promise<void>;
}

/** How often the token file is re-read for its expiry (besides each renewal). */
export const TOKEN_CHECK_INTERVAL_MS = 300_000;

/** Shared setup of {@linkcode startRotator} and {@linkcode runOnce}. */
function context(
  initial: RotatorSection,
  deps: RotatorDeps,
): {
  ctx: WorkerContext;
  setSection(s: RotatorSection): void;
  checkToken(): Promise<void>;
  closeExpiry(): void;
} {
  let section = initial;
  const clock = deps.clock ?? systemClock;
  const log = deps.logger ??
    createLogger("rotator", {
      level: initial.log_level,
      now: () => clock.now(),
    });
  const loadBundle = deps.loadBundle ?? (async () => {
    const path = section.ca_bundle;
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new RotatorError(
        "ERR_ROTATOR_BUNDLE_UNREADABLE",
        `Cannot read CA bundle "${path}": ${(err as Error).message}`,
        { cause: err },
      );
    }
  });
  // Which CA replica answered last: the next request starts there.
  const endpoints = new CaEndpoints();
  const sign: Signer = deps.sign ?? (async (req, signal) => {
    // A client per request: a rotated bundle or token is picked up at once.
    const s = section;
    const ca = createCaSigner({
      caUrl: s.ca_url,
      endpoints,
      caBundlePem: await loadBundle(),
      tokenFile: s.token_file,
      timeoutMs: s.request_timeout,
    });
    try {
      return await ca.sign(req, signal);
    } finally {
      ca.close();
    }
  });
  const metrics = deps.metrics ?? new RotatorMetrics(clock);
  const tokenWatch = new ExpiryWatch({
    registry: metrics.registry,
    name: "token_not_after_timestamp_seconds",
    help: "Expiry of the bearer token in token_file (Unix time)",
    credential: "cell-token",
    logger: log,
    clock,
  });
  const certExpiry = new ExpiryWatch({
    credential: "certificate",
    logger: log,
    clock,
  });
  // Reads the token file's expiry (never the token itself into a log).
  const checkToken = async () => {
    const file = section.token_file;
    let exp: Date | undefined;
    try {
      exp = tokenExpiry(await readTokenFile(file));
    } catch {
      return; // A renewal reports an unusable token file.
    }
    if (!exp) return tokenWatch.forget("token");
    tokenWatch.track("token", {
      labels: {},
      notAfter: exp.getTime(),
      warnAt: exp.getTime() - section.expiry_warning.token,
      fields: { file },
    });
  };
  const ctx: WorkerContext = {
    clock,
    log,
    random: deps.random ?? Math.random,
    metrics,
    section: () => section,
    sign: async (req, signal) => {
      try {
        return await sign(req, signal);
      } finally {
        await checkToken();
      }
    },
    loadBundle,
    sync: deps.sync ?? true,
    certExpiry,
  };
  return {
    ctx,
    setSection: (s) => (section = s),
    checkToken,
    closeExpiry: () => {
      tokenWatch.close();
      certExpiry.close();
    },
  };
}

/**
 * Starts renewing every instance in the section. Existing valid pairs are
 * kept until due; missing, invalid or due ones are renewed at once.
 *
 * @param section The resolved `rotator` section.
 * @param deps Clock, logger, signer and other injected dependencies.
 * @returns The running rotator; call `close()` to stop it.
 * @throws {Error} When the metrics listener cannot bind.
 *
 * @example
 * ```ts ignore
 * import { startRotator } from "./mod.ts";
 * const rotator = await startRotator(config.rotator);
 * await rotator.ready();
 * await rotator.close();
 * ```
 */
export async function startRotator(
  section: RotatorSection,
  deps: RotatorDeps = {},
): Promise<RunningRotator> {
  const { ctx, setSection, checkToken, closeExpiry } = context(
    section,
    deps,
  );
  const workers = new Map<string, InstanceWorker>();
  await checkToken();
  // A real-time poll (not on the injected clock, whose timers drive the
  // renewal schedule): it only re-reads a file.
  let tokenTimer: ReturnType<typeof setTimeout> | undefined;
  const tokenLoop = () => {
    tokenTimer = setTimeout(async () => {
      await checkToken();
      if (!closed) tokenLoop();
    }, TOKEN_CHECK_INTERVAL_MS);
  };
  let metricsServer: MetricsServer | undefined;
  if (section.metrics_listen) {
    metricsServer = await serveMetrics(
      section.metrics_listen,
      ctx.metrics.registry,
      ctx.log,
    );
  }
  const add = async (inst: RotatorInstance) => {
    const w = new InstanceWorker(ctx, inst);
    workers.set(inst.instance_id, w);
    await w.start();
  };
  let closed = false;
  // Serialises reloads and close so they never interleave.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn);
    queue = p.catch(() => {});
    return p;
  };

  await Promise.all(sectionEntries(section).map(add));
  tokenLoop();
  ctx.log.info("rotator-started", {
    instances: section.instances.length,
    routers: section.routers.length,
    ca_url: section.ca_url.map(redactUrl).join(" "),
  });

  return {
    metricsAddress: metricsServer?.address,
    metrics: ctx.metrics,
    async ready(instanceId?: string) {
      if (instanceId !== undefined) {
        const w = workers.get(instanceId);
        if (!w) {
          throw new RotatorError(
            "ERR_ROTATOR_UNKNOWN_INSTANCE",
            `Cannot wait for "${instanceId}": not in the rotator config`,
          );
        }
        return await w.ready;
      }
      await Promise.all([...workers.values()].map((w) => w.ready));
    },
    async renewAll() {
      const list = [...workers.values()];
      const ok = await Promise.all(list.map((w) => w.renewNow("forced")));
      return list.filter((_, i) => !ok[i]).map((w) => w.instance.instance_id);
    },
    reload(next: RotatorSection) {
      return serial(async () => {
        if (closed) return;
        setSection(next);
        await checkToken();
        const wanted = new Map(
          sectionEntries(next).map((i) => [i.instance_id, i]),
        );
        for (const [id, w] of workers) {
          const inst = wanted.get(id);
          if (
            !inst || inst.dir !== w.instance.dir ||
            inst.kind !== w.instance.kind
          ) {
            workers.delete(id);
            await w.close();
            ctx.log.info("instance-removed", { instance: id });
          }
        }
        for (const inst of wanted.values()) {
          const w = workers.get(inst.instance_id);
          if (w) w.update(inst);
          else {
            await add(inst);
            ctx.log.info("instance-added", { instance: inst.instance_id });
          }
        }
        ctx.log.info("config-reloaded", { instances: workers.size });
      });
    },
    status() {
      return [...workers.values()].map((w) => w.status());
    },
    async idle() {
      await Promise.all([...workers.values()].map((w) => w.idle()));
    },
    close() {
      return serial(async () => {
        if (closed) return;
        closed = true;
        clearTimeout(tokenTimer);
        await Promise.all([...workers.values()].map((w) => w.close()));
        closeExpiry();
        await metricsServer?.close();
        ctx.log.info("rotator-stopped", {});
      });
    },
  };
}

/** Outcome of {@linkcode runOnce}. */
export interface OnceResult {
  /** Instances that got a new pair. */
  renewed: string[];
  /** Instances whose pair was good and not due. */
  skipped: string[];
  /** Instances that needed a pair and did not get one. */
  failed: string[];
}

/**
 * Issues what is missing, invalid or due, once, then returns (`--once`).
 *
 * @example
 * ```ts ignore
 * import { runOnce } from "./mod.ts";
 * const { failed } = await runOnce(config.rotator);
 * Deno.exit(failed.length ? 1 : 0);
 * ```
 */
export async function runOnce(
  section: RotatorSection,
  deps: RotatorDeps = {},
): Promise<OnceResult> {
  const { ctx, checkToken, closeExpiry } = context(section, deps);
  await checkToken();
  const result: OnceResult = { renewed: [], skipped: [], failed: [] };
  await Promise.all(
    sectionEntries(section).map(async (inst) => {
      const w = new InstanceWorker(ctx, inst);
      const id = inst.instance_id;
      try {
        const reason = await w.prepare();
        if (!reason) result.skipped.push(id);
        else if (await w.renewNow(reason, { retry: false })) {
          result.renewed.push(id);
        } else result.failed.push(id);
      } catch (err) {
        ctx.log.error("cert-renew-failed", {
          instance: id,
          error: (err as Error).message,
        });
        result.failed.push(id);
      } finally {
        await w.close();
      }
    }),
  );
  closeExpiry();
  ctx.log.info("rotator-once-done", {
    renewed: result.renewed.length,
    skipped: result.skipped.length,
    failed: result.failed.length,
  });
  return result;
}

/**
 * One instance's renewal loop: load what is on disk, schedule the renewal,
 * renew (fresh key, CSR, sign, validate, atomic swap), back off while the CA
 * is unavailable, and say loudly when the certificate has expired.
 * @module
 */
import type { Clock, TimerId } from "../common/mod.ts";
import { describeError } from "../common/mod.ts";
import type { RotatorSection } from "../config/mod.ts";
import type { ExpiryWatch, Logger } from "../observe/mod.ts";
import { certWarnAt } from "../observe/mod.ts";
import {
  certificateMatchesKey,
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  parseCertificate,
} from "../pki/mod.ts";
import type { CertInfo, Identity } from "../pki/mod.ts";
import type { Signer } from "./_client.ts";
import { runRotateHooks } from "./_hooks.ts";
import type { RotatorMetrics } from "./_metrics.ts";
import { backoffDelay, jitteredRenewalTime, renewalTime } from "./_schedule.ts";
import { CredentialStore } from "./_store.ts";
import { abortable, joinChain } from "./_util.ts";
import { checkPair } from "./_validate.ts";
import { CaRequestError, RotatorError } from "./errors.ts";

/**
 * One entry of `rotator.instances`, or of `rotator.routers` seen as one
 * (`kind: "router"`, `instance_id` = the router name).
 */
export type RotatorInstance = RotatorSection["instances"][number] & {
  kind?: "router";
  dns_names?: string[];
};

/**
 * Every identity a section lists: its instances, then its routers (app
 * "router", space and org "system", as the CA's ledger records them).
 */
export function sectionEntries(s: RotatorSection): RotatorInstance[] {
  return [
    ...s.instances,
    ...s.routers.map((r): RotatorInstance => ({
      kind: "router",
      instance_id: r.name,
      app: "router",
      space: "system",
      org: "system",
      ips: r.ips,
      dns_names: r.dns_names,
      dir: r.dir,
      on_rotate: r.on_rotate,
      reload_signal: r.reload_signal,
      pid_file: r.pid_file,
    })),
  ];
}

/** What every worker shares with the rotator. */
export interface WorkerContext {
  clock: Clock;
  log: Logger;
  random: () => number;
  metrics: RotatorMetrics;
  /** The current section (changes on reload). */
  section(): RotatorSection;
  sign: Signer;
  loadBundle(): Promise<string>;
  /** fsync files and directories. */
  sync: boolean;
  /** Warns when a certificate nears its expiry. */
  certExpiry?: ExpiryWatch;
}

/** Why a renewal was started. */
export type RenewReason = "missing" | "invalid" | "due" | "forced" | "retry";

/** A snapshot of one instance, for status output and tests. */
export interface InstanceStatus {
  instanceId: string;
  dir: string;
  serial?: string;
  notAfter?: Date;
  /** Next scheduled renewal or retry (ms since epoch). */
  nextRenewal?: number;
  lastSuccess?: number;
  consecutiveFailures: number;
  renewals: number;
}

/** Manages one instance. */
export class InstanceWorker {
  readonly store: CredentialStore;
  #ctx: WorkerContext;
  #inst: RotatorInstance;
  #info?: CertInfo;
  #failures = 0;
  #renewals = 0;
  #lastSuccess?: number;
  #next?: number;
  #timer?: TimerId;
  #expiryTimer?: TimerId;
  #inflight?: Promise<boolean>;
  #hooks = new Set<Promise<void>>();
  #abort = new AbortController();
  #closed = false;
  #ready: PromiseWithResolvers<void> = Promise.withResolvers();

  constructor(ctx: WorkerContext, inst: RotatorInstance) {
    this.#ctx = ctx;
    this.#inst = inst;
    const s = ctx.section();
    this.store = new CredentialStore(inst.dir, {
      dirMode: s.dir_mode,
      keyMode: s.key_mode,
      certMode: s.cert_mode,
      sync: ctx.sync,
    });
  }

  get instance(): RotatorInstance {
    return this.#inst;
  }

  get #id(): string {
    return this.#inst.instance_id;
  }

  /** The router identity when this entry is a router. */
  get #router(): { name: string; dnsNames: string[] } | undefined {
    const i = this.#inst;
    return i.kind === "router"
      ? { name: i.instance_id, dnsNames: i.dns_names ?? [] }
      : undefined;
  }

  get #identity(): Identity {
    const i = this.#inst;
    return {
      instanceId: i.instance_id,
      app: i.app,
      space: i.space,
      org: i.org,
      ips: i.ips,
    };
  }

  /** Resolves once a valid pair is on disk. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** Settles when no renewal is running. */
  async idle(): Promise<void> {
    while (this.#inflight || this.#hooks.size) {
      await this.#inflight;
      await Promise.all(this.#hooks);
    }
  }

  status(): InstanceStatus {
    return {
      instanceId: this.#id,
      dir: this.#inst.dir,
      serial: this.#info?.serial,
      notAfter: this.#info?.notAfter,
      nextRenewal: this.#next,
      lastSuccess: this.#lastSuccess,
      consecutiveFailures: this.#failures,
      renewals: this.#renewals,
    };
  }

  /**
   * Cleans up after a crash and reads the current pair.
   * @returns Why a renewal is needed now, or `undefined` when the pair is good and not due.
   */
  async prepare(): Promise<RenewReason | undefined> {
    const report = await this.store.recover();
    if (report.removed.length || report.imported) {
      this.#ctx.log.info("credentials-recovered", {
        instance: this.#id,
        removed: report.removed,
        imported: report.imported,
      });
    }
    for (const r of report.repaired) {
      this.#ctx.log.warn("credentials-mode-repaired", {
        instance: this.#id,
        file: r.file,
        mode_was: r.was.toString(8),
        mode: r.mode.toString(8),
      });
    }
    const pair = await this.store.read();
    if (!pair) return "missing";
    try {
      this.#info = await checkPair({
        certPem: pair.certPem,
        keyPem: pair.keyPem,
        identity: this.#identity,
        router: this.#router,
        bundlePem: await this.#ctx.loadBundle(),
        now: this.#ctx.clock.now(),
      });
    } catch (err) {
      this.#ctx.log.warn("cert-invalid", {
        instance: this.#id,
        version: pair.version,
        error: describeError(err),
      });
      await this.#trackExpired(pair.certPem, pair.keyPem);
      return "invalid";
    }
    this.#publish();
    this.#ready.resolve();
    this.#ctx.log.info("cert-loaded", {
      instance: this.#id,
      serial: this.#info.serial,
      not_after: this.#info.notAfter.toISOString(),
      version: pair.version,
    });
    const s = this.#ctx.section();
    const due = renewalTime(
      this.#info.notBefore.getTime(),
      this.#info.notAfter.getTime(),
      s.renew_at,
    );
    return this.#ctx.clock.now() >= due ? "due" : undefined;
  }

  /** Starts the loop: renew now when needed, else schedule. */
  async start(): Promise<void> {
    let reason: RenewReason | undefined;
    try {
      reason = await this.prepare();
    } catch (err) {
      this.#ctx.log.warn("credentials-unreadable", {
        instance: this.#id,
        dir: this.#inst.dir,
        error: describeError(err),
      });
      reason = "invalid";
    }
    if (this.#closed) return;
    this.#armExpiry();
    if (reason) void this.renewNow(reason);
    else this.#scheduleNext();
  }

  /** Replaces the instance settings (same id and dir) after a reload. */
  update(inst: RotatorInstance): void {
    const before = JSON.stringify([this.#identity, this.#router]);
    this.#inst = inst;
    // A changed identity makes the current certificate wrong: replace it now.
    if (JSON.stringify([this.#identity, this.#router]) !== before) {
      void this.renewNow("invalid");
    }
  }

  /**
   * Keeps an expired (but otherwise intact) pair in view, so that the
   * `cert-expired` events and metrics continue after a restart mid-outage.
   */
  async #trackExpired(certPem: string, keyPem: string): Promise<void> {
    try {
      const info = parseCertificate(certPem);
      if (
        this.#ctx.clock.now() >= info.notAfter.getTime() &&
        await certificateMatchesKey(certPem, keyPem)
      ) {
        this.#info = info;
        this.#publish();
      }
    } catch {
      // Unreadable: nothing to track.
    }
  }

  /**
   * Renews now (joining a renewal already running).
   * @param options.retry False for a one-shot run (`--once`): a failure is
   *   logged without scheduling a retry.
   * @returns True when a new pair was written.
   */
  renewNow(
    reason: RenewReason,
    options: { retry?: boolean } = {},
  ): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#inflight) return this.#inflight;
    this.#clearTimer();
    const p = this.#renew(reason, options.retry ?? true).finally(() => {
      if (this.#inflight === p) this.#inflight = undefined;
    });
    this.#inflight = p;
    return p;
  }

  /** Stops timers, abandons a CA request, and waits for a write in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#clearTimer();
    if (this.#expiryTimer !== undefined) {
      this.#ctx.clock.clearTimeout(this.#expiryTimer);
    }
    this.#abort.abort();
    await this.idle();
    this.#ctx.metrics.forget(this.#id);
    this.#ctx.certExpiry?.forget(this.#id);
  }

  async #renew(reason: RenewReason, retry: boolean): Promise<boolean> {
    const { clock, log } = this.#ctx;
    const s = this.#ctx.section();
    const started = clock.now();
    try {
      const keys = await generateKeyPair(s.key_type);
      const identity = this.#identity;
      const router = this.#router;
      const csr = await createCsr(keys, identity);
      if (this.#closed) return false;
      const res = await abortable(
        this.#ctx.sign(
          {
            csr,
            ...identity,
            validity: s.validity,
            ...(router ? { kind: "router", dnsNames: router.dnsNames } : {}),
          },
          this.#abort.signal,
        ),
        this.#abort.signal,
      );
      const keyPem = await exportPrivateKeyPem(keys);
      const certPem = joinChain(res.certificatePem, res.chainPem);
      const info = await checkPair({
        certPem,
        keyPem,
        identity,
        router,
        bundlePem: await this.#ctx.loadBundle(),
        now: clock.now(),
      });
      if (this.#closed) return false;
      // From here on the write is not abandoned: close() waits for it.
      const version = await this.store.commit(certPem, keyPem);
      this.#info = info;
      this.#failures = 0;
      this.#renewals++;
      this.#lastSuccess = clock.now();
      this.#ctx.metrics.success(this.#id, this.#lastSuccess);
      this.#publish();
      log.info("cert-issued", {
        instance: this.#id,
        serial: info.serial,
        not_after: info.notAfter.toISOString(),
        reason,
        version,
        duration_ms: clock.now() - started,
      });
      this.#ready.resolve();
      this.#armExpiry();
      this.#runHooks(info);
      if (!this.#closed) this.#scheduleNext();
      return true;
    } catch (err) {
      if (this.#closed) return false;
      this.#failures++;
      this.#ctx.metrics.failure(this.#id, this.#failures);
      const retryAfter = err instanceof CaRequestError
        ? err.retryAfterMs
        : undefined;
      let delay = backoffDelay(s.backoff, this.#failures, this.#ctx.random());
      if (retryAfter !== undefined) {
        delay = Math.min(s.backoff.max, Math.max(delay, retryAfter));
      }
      log.warn("cert-renew-failed", {
        instance: this.#id,
        reason,
        attempt: this.#failures,
        error: describeError(err),
        code: err instanceof RotatorError ? err.code : undefined,
        status: err instanceof CaRequestError ? err.status : undefined,
        retry_in_ms: retry ? delay : undefined,
        serial: this.#info?.serial,
      });
      if (retry) this.#schedule(clock.now() + delay, "retry");
      return false;
    }
  }

  #scheduleNext(): void {
    const info = this.#info;
    if (!info) return;
    const s = this.#ctx.section();
    let at = jitteredRenewalTime(
      info.notBefore.getTime(),
      info.notAfter.getTime(),
      s.renew_at,
      s.jitter,
      this.#ctx.random(),
    );
    if (this.#lastSuccess !== undefined) {
      at = Math.max(at, this.#lastSuccess + s.min_interval);
    }
    this.#schedule(at, "due");
  }

  #schedule(at: number, reason: RenewReason): void {
    this.#clearTimer();
    if (this.#closed) return;
    this.#next = at;
    this.#ctx.metrics.nextRenewal(this.#id, at);
    const delay = Math.max(0, at - this.#ctx.clock.now());
    this.#ctx.log.debug("renewal-scheduled", {
      instance: this.#id,
      at: new Date(at).toISOString(),
      reason,
    });
    this.#timer = this.#ctx.clock.setTimeout(() => {
      this.#timer = undefined;
      // Long delays can be cut short by the platform timer cap: re-check.
      if (this.#ctx.clock.now() < at) this.#schedule(at, reason);
      else void this.renewNow(reason);
    }, delay);
  }

  #armExpiry(): void {
    const { clock } = this.#ctx;
    if (this.#expiryTimer !== undefined) clock.clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    const info = this.#info;
    if (!info || this.#closed) return;
    const fire = () => {
      this.#expiryTimer = undefined;
      if (this.#info !== info || this.#closed) return;
      const now = clock.now();
      if (now < info.notAfter.getTime()) {
        this.#expiryTimer = clock.setTimeout(
          fire,
          info.notAfter.getTime() - now,
        );
        return;
      }
      this.#ctx.log.error("cert-expired", {
        instance: this.#id,
        serial: info.serial,
        not_after: info.notAfter.toISOString(),
        expired_for_ms: now - info.notAfter.getTime(),
        consecutive_failures: this.#failures,
      });
      this.#expiryTimer = clock.setTimeout(
        fire,
        this.#ctx.section().expired_log_interval,
      );
    };
    this.#expiryTimer = clock.setTimeout(
      fire,
      Math.max(0, info.notAfter.getTime() - clock.now()),
    );
  }

  #publish(): void {
    const info = this.#info;
    if (!info) return;
    this.#ctx.metrics.cert(this.#id, info.notAfter.getTime());
    this.#ctx.certExpiry?.track(this.#id, {
      labels: { instance: this.#id },
      notAfter: info.notAfter.getTime(),
      warnAt: certWarnAt(
        info.notBefore.getTime(),
        info.notAfter.getTime(),
        this.#ctx.section().expiry_warning.cert_fraction,
      ),
      fields: { serial: info.serial, kind: this.#inst.kind ?? "instance" },
    });
  }

  #runHooks(info: CertInfo): void {
    const s = this.#ctx.section();
    const i = this.#inst;
    const onRotate = i.on_rotate ?? s.on_rotate;
    const reloadSignal = i.reload_signal ?? s.reload_signal;
    const pidFile = i.pid_file ?? s.pid_file;
    if (!onRotate && !reloadSignal) return;
    const p = runRotateHooks(
      { onRotate, reloadSignal, pidFile, timeoutMs: s.hook_timeout },
      {
        instanceId: this.#id,
        certFile: this.store.certPath,
        keyFile: this.store.keyPath,
        serial: info.serial,
        notAfter: info.notAfter,
      },
      this.#ctx.log,
    ).finally(() => this.#hooks.delete(p));
    this.#hooks.add(p);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#ctx.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

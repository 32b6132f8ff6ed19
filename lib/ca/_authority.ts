/**
 * The signing decision: token → rate limit → request shape → identity →
 * policy → CSR → validity → issue → ledger. Runtime-agnostic (no HTTP here).
 * @module
 */
import { z } from "zod";
import { parseDuration } from "../common/duration.ts";
import { systemClock } from "../common/clock.ts";
import type { Clock } from "../common/clock.ts";
import type { Logger } from "../observe/mod.ts";
import { MetricsRegistry, silentLogger } from "../observe/mod.ts";
import {
  issueInstanceCertificate,
  issueRouterCertificate,
  parseCertificate,
  validateIdentity,
  validateRouterIdentity,
  verifyCsr,
} from "../pki/mod.ts";
import type { Identity, KeyType, RouterIdentity } from "../pki/mod.ts";
import { KEY_TYPES, PkiError } from "../pki/mod.ts";
import { CaError } from "./errors.ts";
import { authorize, authorizeRouter } from "./_policy.ts";
import {
  CERT_ISSUE_SCOPE,
  CERT_ROUTER_SCOPE,
  createTokenVerifier,
  TokenError,
} from "../token/mod.ts";
import type { TokenClaims, TokenVerifier } from "../token/mod.ts";
import type { CaStore } from "./_store.ts";
import { issuedEntry } from "./_ledger.ts";
import type { LedgerStore } from "./_ledger.ts";
import type { Revocation, RevocationStore } from "./_revocations.ts";
import { CrlPublisher } from "./_crl.ts";

/** The `POST /v1/sign` body. */
export const SignRequest = z.strictObject({
  kind: z.literal("instance").optional(),
  csr: z.string().min(1),
  instance_id: z.string(),
  app: z.string(),
  space: z.string(),
  org: z.string(),
  ips: z.array(z.string()).default([]),
  validity: z.string().optional(),
});
/** A parsed sign request. */
export type SignRequest = z.output<typeof SignRequest>;

/** The `POST /v1/sign` body for a router identity (needs `cert.router`). */
export const RouterSignRequest = z.strictObject({
  kind: z.literal("router"),
  csr: z.string().min(1),
  name: z.string(),
  dns_names: z.array(z.string()).default([]),
  ips: z.array(z.string()).default([]),
  validity: z.string().optional(),
});
/** A parsed router sign request. */
export type RouterSignRequest = z.output<typeof RouterSignRequest>;

/** The ledger row of a router: app "router", space and org "system". */
function routerLedgerIdentity(r: RouterIdentity): Identity {
  return {
    instanceId: r.name,
    app: "router",
    space: "system",
    org: "system",
    ips: r.ips,
  };
}

function isRouterBody(body: unknown): boolean {
  return !!body && typeof body === "object" &&
    (body as Record<string, unknown>).kind === "router";
}

/** The `201` answer of `POST /v1/sign`. */
export interface SignResponse {
  /** Leaf certificate PEM. */
  certificate: string;
  /** Intermediate PEM (what a server sends after the leaf). */
  chain: string;
  serial: string;
  not_after: string;
}

/** Options for {@linkcode CertificateAuthority}. */
export interface AuthorityOptions {
  /** @default {24h} */
  defaultValidityMs?: number;
  /** @default {168h} */
  maxValidityMs?: number;
  /** @default {60s} */
  backdateMs?: number;
  /** @default {all} */
  allowedKeyTypes?: KeyType[];
  /** Per-caller token bucket. @default {{perSecond: 50, burst: 100}} */
  rateLimit?: { perSecond: number; burst: number };
  /** Revoked tokens and identities; none when absent. */
  revocations?: RevocationStore;
  clock?: Clock;
  logger?: Logger;
  metrics?: MetricsRegistry;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Issues instance certificates under the policy of the caller's token.
 *
 * @example
 * ```ts ignore
 * const ca = new CertificateAuthority(await loadCa(dir), Ledger.open(`${dir}/ledger.sqlite`));
 * const res = await ca.sign(body, bearerToken);
 * ```
 */
export class CertificateAuthority {
  readonly store: CaStore;
  readonly ledger: LedgerStore;
  readonly metrics: MetricsRegistry;
  readonly revocations: RevocationStore | undefined;
  #o: Required<Omit<AuthorityOptions, "metrics" | "revocations">>;
  #crl: CrlPublisher | undefined;
  #buckets = new Map<string, Bucket>();
  #verifier: Promise<TokenVerifier>;
  #issued;
  #latency;

  constructor(
    store: CaStore,
    ledger: LedgerStore,
    options: AuthorityOptions = {},
  ) {
    this.store = store;
    this.ledger = ledger;
    this.revocations = options.revocations;
    this.#o = {
      defaultValidityMs: options.defaultValidityMs ?? 86_400_000,
      maxValidityMs: options.maxValidityMs ?? 7 * 86_400_000,
      backdateMs: options.backdateMs ?? 60_000,
      allowedKeyTypes: options.allowedKeyTypes ?? [...KEY_TYPES],
      rateLimit: options.rateLimit ?? { perSecond: 50, burst: 100 },
      clock: options.clock ?? systemClock,
      logger: options.logger ?? silentLogger,
    };
    this.#verifier = createTokenVerifier({
      publicKey: store.tokenKeys.publicKey,
      clock: this.#o.clock,
      // A correctly signed token without `exp` would never expire.
      requiredClaims: ["exp"],
    });
    this.metrics = options.metrics ?? new MetricsRegistry("sigil_ca");
    if (this.revocations) {
      this.#crl = new CrlPublisher(store.issuer, this.revocations, {
        clock: this.#o.clock,
        metrics: this.metrics,
      });
    }
    this.#issued = this.metrics.counter(
      "issuances_total",
      "Sign requests by result (issued, refused, error) and reason",
      [{ result: "issued", reason: "ok" }],
    );
    this.#latency = this.metrics.histogram(
      "issuance_duration_seconds",
      "Time to answer a sign request that reached the signer",
    );
    const root = parseCertificate(store.rootPem);
    const inter = parseCertificate(store.intermediatePem);
    // No serial label on the current one: it would start a new series on
    // every CA rotation, and alerts need one series to watch.
    this.metrics.gauge(
      "root_not_after_timestamp_seconds",
      "Root CA certificate notAfter (Unix time)",
      () => [[{}, Math.floor(root.notAfter.getTime() / 1000)]],
    );
    this.metrics.gauge(
      "intermediate_not_after_timestamp_seconds",
      "Intermediate CA certificate notAfter (Unix time), the one that signs new leaves",
      () => [[{}, Math.floor(inter.notAfter.getTime() / 1000)]],
    );
    this.metrics.gauge(
      "previous_intermediate_not_after_timestamp_seconds",
      "notAfter (Unix time) of each previous intermediate still served after a renewal, by serial",
      () =>
        store.previousIntermediates.filter((p) =>
          p.notAfter.getTime() > this.#o.clock.now()
        ).map((p) => [
          { serial: p.serial },
          Math.floor(p.notAfter.getTime() / 1000),
        ]),
    );
  }

  /**
   * Handles one sign request.
   *
   * @param body The parsed JSON body (unvalidated).
   * @param token The bearer token (without "Bearer ").
   * @param request `client`: the caller's address, named in refusal logs.
   * @returns The certificate and its chain.
   * @throws {CaError} With a code the HTTP edge maps to 400/401/403/429/500.
   */
  async sign(
    body: unknown,
    token: string | undefined,
    request: { client?: string } = {},
  ): Promise<SignResponse> {
    const started = performance.now();
    let claims: TokenClaims | undefined;
    let identity: Identity | undefined;
    const routerKind = isRouterBody(body);
    try {
      claims = await (await this.#verifier).verify(token, {
        scopes: [routerKind ? CERT_ROUTER_SCOPE : CERT_ISSUE_SCOPE],
      }).catch((err) => {
        if (!(err instanceof TokenError)) throw err;
        throw new CaError(
          err.status === 403 ? "ERR_CA_FORBIDDEN" : "ERR_CA_UNAUTHENTICATED",
          err.message,
          { cause: err },
        );
      });
      await this.#checkToken(claims);
      this.#rateLimit(claims.subject);
      let req: { csr: string; validity?: string };
      let router: RouterIdentity | undefined;
      if (routerKind) {
        const r = this.#parseRouter(body);
        router = this.#routerIdentity(r);
        authorizeRouter(claims, router);
        identity = routerLedgerIdentity(router);
        req = r;
      } else {
        const r = this.#parse(body);
        identity = this.#identity(r);
        authorize(claims, identity);
        req = r;
      }
      await this.#checkIdentity(identity);
      const subject = identity.instanceId;
      const csr = await verifyCsr(req.csr).catch((err) => {
        throw new CaError(
          "ERR_CA_CSR_INVALID",
          `Cannot issue certificate for "${subject}": ${
            (err as Error).message
          }`,
          { cause: err },
        );
      });
      if (!this.#o.allowedKeyTypes.includes(csr.keyType)) {
        throw new CaError(
          "ERR_CA_CSR_INVALID",
          `Cannot issue certificate for "${identity.instanceId}": key type "${csr.keyType}" is not allowed (allowed: ${
            this.#o.allowedKeyTypes.join(", ")
          })`,
        );
      }
      const validityMs = this.#validity(req, identity.instanceId);
      const leafOptions = {
        trustDomain: this.store.meta.trust_domain,
        validityMs,
        backdateMs: this.#o.backdateMs,
        now: this.#o.clock.now(),
      };
      const leaf = router
        ? await issueRouterCertificate(
          csr.publicKey,
          router,
          this.store.issuer,
          leafOptions,
        )
        : await issueInstanceCertificate(
          csr.publicKey,
          identity,
          this.store.issuer,
          leafOptions,
        );
      await this.ledger.commit(
        issuedEntry(
          identity,
          leaf,
          claims.subject,
          new Date(this.#o.clock.now()).toISOString(),
        ),
      );
      if (leaf.clamped) {
        this.#o.logger.warn("validity-clamped", {
          instance: identity.instanceId,
          serial: leaf.serial,
          not_after: leaf.notAfter.toISOString(),
        });
      }
      this.#o.logger.info("cert-issued", {
        instance: identity.instanceId,
        app: identity.app,
        kind: router ? "router" : undefined,
        serial: leaf.serial,
        not_after: leaf.notAfter.toISOString(),
        caller: claims.subject,
      });
      this.#issued.inc({ result: "issued", reason: "ok" });
      this.#latency.observe((performance.now() - started) / 1000);
      return {
        certificate: leaf.pem,
        chain: this.store.intermediatePem,
        serial: leaf.serial,
        not_after: leaf.notAfter.toISOString(),
      };
    } catch (err) {
      const e = err instanceof CaError
        ? err
        : err instanceof PkiError
        ? new CaError(err.code.replace("ERR_PKI_", "ERR_CA_"), err.message, {
          cause: err,
        })
        : err;
      const code = (e as CaError).code ?? "ERR_CA_INTERNAL";
      // A ledger that cannot be written (or any internal failure) is the
      // CA's error, not a refusal of the caller.
      const ledgerDown = code === "ERR_CA_LEDGER" ||
        code === "ERR_CA_LEDGER_UNAVAILABLE";
      const internal = ledgerDown || code === "ERR_CA_INTERNAL" ||
        !(e instanceof CaError);
      this.#issued.inc({
        result: internal ? "error" : "refused",
        reason: code,
      });
      if (!ledgerDown) {
        this.#recordRefusal(claims, identity, body, code, e);
      }
      this.#o.logger.warn("cert-refused", {
        code,
        client: request.client,
        reason: (e as Error).message,
        caller: claims?.subject,
        instance: identity?.instanceId,
      });
      throw e;
    }
  }

  /** Refuses a token revoked by `jti` or subject (401). */
  async #checkToken(claims: TokenClaims): Promise<void> {
    const r = await this.revocations?.tokenRevocation(
      claims.id,
      claims.subject,
    );
    if (!r) return;
    throw new CaError(
      "ERR_CA_TOKEN_REVOKED",
      `Invalid bearer token: token revoked (${
        r.kind === "token"
          ? `jti "${r.value}"`
          : `every token of subject "${r.value}"`
      }, ${describeRevocation(r)}); mint a new one with 'sigil ca token'`,
    );
  }

  /** Refuses an instance or app revoked (403; passive revocation). */
  async #checkIdentity(identity: Identity): Promise<void> {
    const r = await this.revocations?.identityRevocation(
      identity.instanceId,
      identity.app,
    );
    if (!r) return;
    throw new CaError(
      "ERR_CA_REVOKED",
      `Cannot issue certificate for "${identity.instanceId}": ${r.kind} "${r.value}" is revoked (${
        describeRevocation(r)
      })`,
    );
  }

  /**
   * The current CRL (PEM), signed by the intermediate: every unexpired
   * certificate the ledger holds for a revoked instance or app.
   *
   * @throws {CaError} `ERR_CA_LEDGER` when the store cannot be read.
   */
  crlPem(): Promise<string> {
    if (!this.#crl) {
      throw new CaError(
        "ERR_CA_INTERNAL",
        "Cannot publish a CRL: this CA has no revocation store",
      );
    }
    return this.#crl.pem();
  }

  #rateLimit(caller: string): void {
    const { perSecond, burst } = this.#o.rateLimit;
    const now = this.#o.clock.now();
    const b = this.#buckets.get(caller) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    this.#buckets.set(caller, b);
    if (b.tokens < 1) {
      // Whole seconds until one token refills (RFC 9110 §10.2.3 delay-seconds).
      const wait = Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
      throw new CaError(
        "ERR_CA_RATE_LIMITED",
        `Too many sign requests from "${caller}": limit is ${perSecond}/s (burst ${burst}); retry in ${wait} s`,
        { retryAfterSeconds: wait },
      );
    }
    b.tokens -= 1;
  }

  #parseRouter(body: unknown): RouterSignRequest {
    const r = RouterSignRequest.safeParse(body);
    if (!r.success) {
      throw new CaError(
        "ERR_CA_REQUEST_INVALID",
        `Invalid router sign request: ${describeIssues(r.error.issues)}`,
      );
    }
    return r.data;
  }

  #routerIdentity(req: RouterSignRequest): RouterIdentity {
    try {
      return validateRouterIdentity({
        name: req.name,
        dnsNames: req.dns_names,
        ips: req.ips,
      });
    } catch (err) {
      throw new CaError("ERR_CA_IDENTITY_INVALID", (err as Error).message, {
        cause: err,
      });
    }
  }

  #parse(body: unknown): SignRequest {
    if (body === undefined) {
      throw new CaError(
        "ERR_CA_REQUEST_INVALID",
        "Invalid sign request: body is not valid JSON",
      );
    }
    const r = SignRequest.safeParse(body);
    if (!r.success) {
      throw new CaError(
        "ERR_CA_REQUEST_INVALID",
        `Invalid sign request: ${describeIssues(r.error.issues)}`,
      );
    }
    return r.data;
  }

  #identity(req: SignRequest): Identity {
    try {
      return validateIdentity({
        instanceId: req.instance_id,
        app: req.app,
        space: req.space,
        org: req.org,
        ips: req.ips,
      });
    } catch (err) {
      throw new CaError("ERR_CA_IDENTITY_INVALID", (err as Error).message, {
        cause: err,
      });
    }
  }

  #validity(req: { validity?: string }, instance: string): number {
    if (req.validity === undefined) {
      return Math.min(this.#o.defaultValidityMs, this.#o.maxValidityMs);
    }
    let ms: number;
    try {
      ms = parseDuration(req.validity);
    } catch {
      throw new CaError(
        "ERR_CA_REQUEST_INVALID",
        `Invalid sign request: validity "${
          req.validity.slice(0, 32)
        }" is not a duration like "24h"`,
      );
    }
    if (ms < 60_000 || ms > this.#o.maxValidityMs) {
      throw new CaError(
        "ERR_CA_REQUEST_INVALID",
        `Cannot issue certificate for "${instance}": validity must be between 1m and ${
          Math.round(this.#o.maxValidityMs / 3_600_000)
        }h`,
      );
    }
    return ms;
  }

  /** The authority's clock, in ms (status page). */
  now(): number {
    return this.#o.clock.now();
  }

  #recordRefusal(
    claims: TokenClaims | undefined,
    identity: Identity | undefined,
    body: unknown,
    code: string,
    err: unknown,
  ): void {
    const b = (body && typeof body === "object" ? body : {}) as Record<
      string,
      unknown
    >;
    const str = (v: unknown) => typeof v === "string" ? v.slice(0, 128) : null;
    // Group commit, not awaited: a flood of refused requests (no token, over
    // the rate limit) shares disk syncs instead of paying one each on the
    // JS thread before its answer.
    this.ledger.commit({
      time: new Date(this.#o.clock.now()).toISOString(),
      result: "refused",
      serial: null,
      instance_id: identity?.instanceId ?? str(b.instance_id),
      app: identity?.app ?? str(b.app),
      space: identity?.space ?? str(b.space),
      org: identity?.org ?? str(b.org),
      ips: JSON.stringify(identity?.ips ?? []),
      not_after: null,
      caller: claims?.subject ?? null,
      reason: `${code}: ${(err as Error).message}`.slice(0, 500),
    }).catch((e) => {
      this.#o.logger.error("ledger-write-failed", {
        reason: (e as Error).message,
      });
    });
  }
}

function describeIssues(issues: z.core.$ZodIssue[]): string {
  return issues.map((i) =>
    i.code === "unrecognized_keys"
      ? `unknown field(s) ${i.keys.map((k) => `"${k}"`).join(", ")}`
      : `${i.path.join(".") || "body"}: ${i.message}`
  ).join("; ");
}

/** "revoked 2026-…Z: reason" for messages. */
function describeRevocation(r: Revocation): string {
  return `revoked ${r.time}${r.reason ? `: ${r.reason.slice(0, 200)}` : ""}`;
}

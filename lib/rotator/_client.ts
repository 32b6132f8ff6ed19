/**
 * The CA client: `POST /v1/sign` over HTTPS, trusting only the CA bundle,
 * authenticating with the cell's bearer token (read from its file on every
 * request, so a replaced token is picked up without a restart).
 * @module
 */
import { describeFetchError, readTokenFile, redactUrl } from "../common/mod.ts";
import { CaRequestError, RotatorError } from "./errors.ts";

/** What the rotator asks the CA to sign. */
export interface SignRequest {
  csr: string;
  instanceId: string;
  app: string;
  space: string;
  org: string;
  ips: string[];
  /** Requested validity such as `"24h"`; the CA default when absent. */
  validity?: string;
  /** `"router"`: a router identity named `instanceId` (scope `cert.router`). */
  kind?: "router";
  /** More DNS names of a router. */
  dnsNames?: string[];
}

/** What the CA returns. */
export interface SignResult {
  /** The leaf, PEM. */
  certificatePem: string;
  /** The intermediate(s), PEM. */
  chainPem: string;
  serial: string;
  notAfter: Date;
}

/** The JSON body of `POST /v1/sign` (snake_case, as the CA reads it). */
export interface SignRequestBody {
  csr: string;
  instance_id: string;
  app: string;
  space: string;
  org: string;
  ips: string[];
  validity?: string;
}

/** The JSON body of `POST /v1/sign` for a router identity. */
export interface RouterSignRequestBody {
  kind: "router";
  csr: string;
  name: string;
  dns_names: string[];
  ips: string[];
  validity?: string;
}

/** The `POST /v1/sign` body of a router {@linkcode SignRequest}. */
export function routerSignRequestBody(req: SignRequest): RouterSignRequestBody {
  return {
    kind: "router",
    csr: req.csr,
    name: req.instanceId,
    dns_names: req.dnsNames ?? [],
    ips: req.ips,
    ...(req.validity ? { validity: req.validity } : {}),
  };
}

/**
 * The `POST /v1/sign` body for a {@linkcode SignRequest}.
 *
 * @example
 * ```ts
 * import { signRequestBody } from "./_client.ts";
 * const body = signRequestBody({ csr: "-----BEGIN CERTIFICATE REQUEST-----", instanceId: "i-1", app: "a", space: "s", org: "o", ips: [] });
 * console.assert(body.instance_id === "i-1" && !("validity" in body));
 * ```
 */
export function signRequestBody(req: SignRequest): SignRequestBody {
  return {
    csr: req.csr,
    instance_id: req.instanceId,
    app: req.app,
    space: req.space,
    org: req.org,
    ips: req.ips,
    ...(req.validity ? { validity: req.validity } : {}),
  };
}

/**
 * Signs a CSR. The default talks HTTPS to the CA; tests pass an in-process one.
 * Must reject with a {@linkcode RotatorError} (or any error) on failure.
 */
export type Signer = (
  request: SignRequest,
  signal?: AbortSignal,
) => Promise<SignResult>;

/**
 * Remembers which of several CA replicas answered last, so the next request
 * starts there instead of paying a failed attempt on a dead replica first.
 *
 * @example
 * ```ts
 * import { CaEndpoints } from "./_client.ts";
 * const e = new CaEndpoints();
 * e.answered("https://b:8443");
 * console.assert(e.order(["https://a:8443", "https://b:8443"])[0] === "https://b:8443");
 * ```
 */
export class CaEndpoints {
  #last: string | undefined;

  /** `urls`, starting with the one that answered last (if listed). */
  order(urls: readonly string[]): string[] {
    const i = this.#last === undefined ? -1 : urls.indexOf(this.#last);
    return i <= 0 ? [...urls] : [...urls.slice(i), ...urls.slice(0, i)];
  }

  /** Notes the URL that answered. */
  answered(url: string): void {
    this.#last = url;
  }
}

/**
 * Whether a failed sign may be sent to another CA replica at once: the CA
 * was not reached or timed out (status 0), or answered 5xx (its database or
 * itself is down). A 4xx is the same answer from every replica (they share
 * keys and policy), and 429 is the caller's own rate: neither moves on.
 */
export function isFailoverError(err: unknown): boolean {
  return err instanceof CaRequestError &&
    (err.status === 0 || err.status >= 500);
}

/** Options for {@linkcode createCaSigner}. */
export interface CaSignerOptions {
  /**
   * Base URL, e.g. `https://127.0.0.1:8443`, or several CA replicas: each
   * request tries them in turn (see {@linkcode isFailoverError}), starting
   * with the last one that answered; when all fail the request fails with
   * the last error and the caller's backoff applies.
   */
  caUrl: string | readonly string[];
  /** Shared between signers to remember the replica that answered. */
  endpoints?: CaEndpoints;
  /** PEM bundle the CA's TLS certificate must chain to. */
  caBundlePem: string;
  /** Path of the bearer token file. */
  tokenFile: string;
  /** Timeout of one request in ms. @default {30000} */
  timeoutMs?: number;
  /** `fetch` to use. @default {globalThis.fetch} */
  fetch?: typeof fetch;
}

/** A signer with its HTTP client, which must be closed. */
export interface CaSigner {
  sign: Signer;
  close(): void;
}

/**
 * Creates the HTTPS signer.
 *
 * @example
 * ```ts ignore
 * import { createCaSigner } from "./_client.ts";
 * const ca = createCaSigner({ caUrl: "https://127.0.0.1:8443", caBundlePem, tokenFile: "/etc/sigil/token" });
 * const res = await ca.sign({ csr, instanceId: "i-1", app: "a", space: "s", org: "o", ips: [] });
 * ca.close();
 * ```
 */
export function createCaSigner(options: CaSignerOptions): CaSigner {
  const client = Deno.createHttpClient({ caCerts: [options.caBundlePem] });
  const doFetch = options.fetch ?? fetch;
  const urls = typeof options.caUrl === "string"
    ? [options.caUrl]
    : [...options.caUrl];
  const endpoints = options.endpoints ?? new CaEndpoints();
  const timeoutMs = options.timeoutMs ?? 30_000;
  const signAt = async (
    caUrl: string,
    req: SignRequest,
    signal: AbortSignal | undefined,
  ): Promise<SignResult> => {
    const url = new URL("/v1/sign", caUrl).toString();
    const token = await readToken(options.tokenFile);
    const body = JSON.stringify(
      req.kind === "router" ? routerSignRequestBody(req) : signRequestBody(req),
    );
    const timeout = AbortSignal.timeout(timeoutMs);
    const signals = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await doFetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
        },
        body,
        client,
        signal: signals,
      } as RequestInit);
    } catch (err) {
      const why = timeout.aborted
        ? `no answer within ${timeoutMs} ms`
        : describeFetchError(err);
      throw new CaRequestError(
        "ERR_ROTATOR_CA_UNREACHABLE",
        `Cannot reach CA at "${redactUrl(caUrl)}": ${why}`,
        { status: 0 },
        { cause: err },
      );
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch (err) {
      throw new CaRequestError(
        res.ok ? "ERR_ROTATOR_CERT_INVALID" : "ERR_ROTATOR_CA_REJECTED",
        `Cannot renew "${req.instanceId}": CA${
          urls.length > 1 ? ` at "${redactUrl(caUrl)}"` : ""
        } answered ${res.status} without a JSON body`,
        { status: res.status },
        { cause: err },
      );
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: unknown; message?: unknown } })
        ?.error;
      const caCode = typeof e?.code === "string" ? e.code : undefined;
      const msg = typeof e?.message === "string"
        ? e.message.slice(0, 300)
        : "no message";
      throw new CaRequestError(
        "ERR_ROTATOR_CA_REJECTED",
        `Cannot renew "${req.instanceId}": CA${
          urls.length > 1 ? ` at "${redactUrl(caUrl)}"` : ""
        } answered ${res.status}${caCode ? ` ${caCode}` : ""}: ${msg}`,
        {
          status: res.status,
          caCode,
          retryAfterMs: retryAfter(res.headers.get("retry-after")),
        },
      );
    }
    return parseSignResult(json, req.instanceId);
  };
  const sign: Signer = async (req, signal) => {
    const order = endpoints.order(urls);
    const failed: string[] = [];
    for (const [i, caUrl] of order.entries()) {
      try {
        const res = await signAt(caUrl, req, signal);
        endpoints.answered(caUrl);
        return res;
      } catch (err) {
        const last = i === order.length - 1;
        if (last || signal?.aborted || !isFailoverError(err)) {
          if (failed.length === 0 || !(err instanceof CaRequestError)) {
            throw err;
          }
          // Every replica failed: the last answer decides the backoff,
          // the message names them all.
          throw new CaRequestError(
            err.code,
            `${err.message} (after ${failed.join("; ")})`,
            {
              status: err.status,
              caCode: err.caCode,
              retryAfterMs: err.retryAfterMs,
            },
            { cause: err },
          );
        }
        failed.push((err as Error).message);
      }
    }
    throw new RotatorError("ERR_ROTATOR_CA_UNREACHABLE", "No CA URL to try");
  };
  return { sign, close: () => client.close() };
}

async function readToken(path: string): Promise<string> {
  try {
    return await readTokenFile(path);
  } catch (err) {
    throw new RotatorError(
      "ERR_ROTATOR_TOKEN_UNREADABLE",
      (err as Error).message,
      { cause: err },
    );
  }
}

function retryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const s = Number(value);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(value);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

function parseSignResult(json: unknown, instanceId: string): SignResult {
  const o = json as Record<string, unknown> | null;
  const bad = (what: string) =>
    new RotatorError(
      "ERR_ROTATOR_CERT_INVALID",
      `Cannot accept certificate for "${instanceId}": CA response ${what}`,
    );
  if (!o || typeof o !== "object") throw bad("is not a JSON object");
  if (typeof o.certificate !== "string") throw bad('has no "certificate"');
  const notAfter = typeof o.not_after === "string"
    ? new Date(o.not_after)
    : undefined;
  return {
    certificatePem: o.certificate,
    chainPem: typeof o.chain === "string" ? o.chain : "",
    serial: typeof o.serial === "string" ? o.serial : "",
    notAfter: notAfter && !isNaN(notAfter.getTime()) ? notAfter : new Date(0),
  };
}

/**
 * The launcher's CredHub call: `POST /api/v1/interpolate` with the whole
 * `VCAP_SERVICES`, authenticated by the instance certificate (mTLS), as
 * buildpackapplifecycle `credhub/credhub.go` does through CF's Go client
 * (credhub-cli `credhub/interpolate.go`, `request.go`, `error.go`).
 *
 * Differences from CF, on purpose:
 * - the certificate and key are read again for every attempt, so a rotation
 *   that swapped one file but not yet the other (the rotator renames key,
 *   then cert) heals on the next try instead of failing every attempt;
 * - delays grow (doubling up to a cap) and there is no sleep after the last
 *   attempt (CF sleeps after it too);
 * - a 4xx answer (not found, unauthenticated) is final and not retried: the
 *   same request would get the same answer. CF retries every error.
 * @module
 */
import { request } from "node:https";
import { rootCertificates } from "node:tls";
import { describeError } from "../common/mod.ts";
import { backoffDelay } from "../rotator/mod.ts";
import type { Logger } from "../observe/mod.ts";
import { LaunchError } from "./errors.ts";

/** Options of {@linkcode interpolateServices}. */
export interface InterpolateOptions {
  /** CredHub's base URL, e.g. `https://credhub.internal:8844`. */
  url: string;
  /** `CF_INSTANCE_CERT`: the instance's chain (PEM). */
  certFile: string;
  /** `CF_INSTANCE_KEY`: the instance's key (PEM). Never logged. */
  keyFile: string;
  /** CAs trusted for CredHub's certificate, besides the system roots. */
  caPems: string[];
  /** @default {3} */
  attempts?: number;
  /** Delay before the first retry, doubled each time. @default {1000} */
  retryDelayMs?: number;
  /** @default {30000} */
  maxRetryDelayMs?: number;
  /** @default {30000} */
  timeoutMs?: number;
  logger: Logger;
  /** Injected for tests. @default {setTimeout} */
  sleep?: (ms: number) => Promise<void>;
}

/** One failed attempt: its message (CF client wording) and whether a retry may help. */
class AttemptError extends Error {
  constructor(message: string, readonly retry: boolean) {
    super(message);
  }
}

/**
 * Serializes JSON as Go's `json.Unmarshal` + `json.Marshal` of a
 * `map[string]interface{}` leaves it: object keys sorted by code point at
 * every level, and a lone UTF-16 surrogate (`"\ud800"` in the input) turned
 * into U+FFFD, as Go decodes it. CF's client re-encodes `VCAP_SERVICES` this
 * way before posting it, and CredHub keeps what it receives, so sending the
 * same gives the app the same bytes. (Go's `<`, `>`, `&` escapes change the
 * bytes sent but not the value, so they are not needed.)
 *
 * @example
 * ```ts
 * import { goOrderedJson } from "./_interpolate.ts";
 * console.assert(goOrderedJson({ b: 1, a: [{ d: 2, c: 3 }] }) === '{"a":[{"c":3,"d":2}],"b":1}');
 * console.assert(goOrderedJson(["\ud800"]) === '["\ufffd"]');
 * ```
 */
export function goOrderedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(goOrderedJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    // Go's map: the decoded (well-formed) key; the last duplicate wins.
    const map = new Map<string, unknown>();
    for (const [k, v] of Object.entries(value)) map.set(k.toWellFormed(), v);
    const keys = [...map.keys()].sort(byCodePoint);
    return `{${
      keys.map((k) => `${JSON.stringify(k)}:${goOrderedJson(map.get(k))}`)
        .join(",")
    }}`;
  }
  if (typeof value === "string") return JSON.stringify(value.toWellFormed());
  return JSON.stringify(value);
}

/** Code-point order (Go compares UTF-8 bytes; JS's default compares UTF-16 units). */
function byCodePoint(a: string, b: string): number {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * Replaces every `credhub-ref` of `VCAP_SERVICES` by CredHub's answer, with
 * retries. Returns the response body as CredHub sent it (CF's client does
 * the same), or the input unchanged when it holds no `"credhub-ref"`.
 *
 * @throws {LaunchError} `ERR_LAUNCH_INTERPOLATE` after the last failed attempt,
 *   with the message CF's launcher prints (`Unable to interpolate credhub
 *   references: <CredHub's error>`).
 * @example
 * ```ts ignore
 * const services = await interpolateServices(Deno.env.get("VCAP_SERVICES")!, {
 *   url: "https://credhub:8844", certFile, keyFile, caPems, logger,
 * });
 * ```
 */
export async function interpolateServices(
  vcapServices: string,
  o: InterpolateOptions,
): Promise<string> {
  if (!vcapServices.includes(`"credhub-ref"`)) return vcapServices;
  const body = goOrderedJson(parseVcapServices(vcapServices));
  const attempts = o.attempts ?? 3;
  const sleep = o.sleep ??
    ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  // The rotator's backoff rule, without jitter: one app instance, one call.
  const backoff = {
    initial: o.retryDelayMs ?? 1000,
    max: o.maxRetryDelayMs ?? 30_000,
    jitter: 0,
  };
  for (let attempt = 1;; attempt++) {
    try {
      const out = await attemptOnce(body, o);
      o.logger.info("credhub-interpolated", { url: o.url, attempt });
      return out;
    } catch (err) {
      const e = err instanceof AttemptError
        ? err
        : new AttemptError(describeError(err), true);
      const last = attempt >= attempts || !e.retry;
      const delay = backoffDelay(backoff, attempt, 0);
      o.logger.warn("credhub-interpolate-failed", {
        url: o.url,
        attempt,
        attempts,
        reason: e.message,
        ...(last ? {} : { retry_in_ms: delay }),
      });
      if (last) throw fail(e.message, err);
      await sleep(delay);
    }
  }
}

/**
 * `JSON.parse` with the refusals of Go's decoder into a map (a number beyond
 * float64, a non-object), and errors that never quote the text: it holds
 * credentials, and V8's "Unexpected token" message quotes it.
 */
function parseVcapServices(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, function (key, value) {
      if (typeof value === "number" && !Number.isFinite(value)) {
        throw new RangeError(
          `the number at key "${key}" is outside the range of a 64-bit float (CF's client refuses it too)`,
        );
      }
      return value;
    });
  } catch (err) {
    const m = err instanceof RangeError
      ? err.message
      : /is not valid JSON$/.test((err as Error).message ?? "")
      ? "an unexpected character"
      : describeError(err);
    throw fail(`VCAP_SERVICES is not valid JSON: ${m}`, err);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw fail("VCAP_SERVICES is not a JSON object");
  }
  return parsed as Record<string, unknown>;
}

function fail(reason: string, cause?: unknown): LaunchError {
  return new LaunchError(
    "ERR_LAUNCH_INTERPOLATE",
    `Unable to interpolate credhub references: ${reason}`,
    { cause },
  );
}

async function attemptOnce(body: string, o: InterpolateOptions) {
  let cert: string, key: string;
  try {
    [cert, key] = await Promise.all([
      Deno.readTextFile(o.certFile),
      Deno.readTextFile(o.keyFile),
    ]);
  } catch (err) {
    // The rotator may not have written them yet: worth another try.
    throw new AttemptError(
      `Cannot read the instance credentials: ${describeError(err)}`,
      true,
    );
  }
  const target = new URL("/api/v1/interpolate", o.url);
  const res = await post(target, body, {
    cert,
    key,
    ca: [...rootCertificates, ...o.caPems],
    timeoutMs: o.timeoutMs ?? 30_000,
  });
  if (res.status >= 200 && res.status < 300) return res.body;
  // CF's client: 404 → NotFoundError{error}; others → Error{error, error_description}.
  let msg: string;
  try {
    const j = JSON.parse(res.body) as Record<string, unknown>;
    const name = typeof j?.error === "string" ? j.error : "";
    const desc = res.status !== 404 && typeof j?.error_description === "string"
      ? j.error_description
      : "";
    msg = desc ? `${name}: ${desc}` : name;
  } catch (err) {
    msg = `The response body could not be decoded: ${describeError(err)}`;
  }
  throw new AttemptError(
    msg || `CredHub answered ${res.status}`,
    res.status >= 500 || res.status === 429,
  );
}

function post(
  url: URL,
  body: string,
  t: { cert: string; key: string; ca: string[]; timeoutMs: number },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const where = `Post "${url.href}"`;
    let req: ReturnType<typeof request>;
    try {
      req = request(url, {
        method: "POST",
        cert: t.cert,
        key: t.key,
        ca: t.ca,
        agent: false,
        minVersion: "TLSv1.2",
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on(
          "error",
          (err) =>
            reject(new AttemptError(`${where}: ${describeError(err)}`, true)),
        );
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(parts).toString("utf8"),
          }));
      });
    } catch (err) {
      // A key that does not match the certificate (mid-rotation) lands here.
      reject(
        new AttemptError(
          `Cannot use the instance credentials: ${describeError(err)}`,
          true,
        ),
      );
      return;
    }
    req.setTimeout(t.timeoutMs, () =>
      req.destroy(
        new Error(`no answer within ${t.timeoutMs} ms (request timeout)`),
      ));
    req.on(
      "error",
      (err) =>
        reject(new AttemptError(`${where}: ${describeError(err)}`, true)),
    );
    req.end(body);
  });
}

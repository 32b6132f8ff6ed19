/**
 * Base error class for every condition a Sigil caller is expected to catch.
 *
 * Each role defines one subclass per condition in `lib/<role>/errors.ts`. The
 * `code` is stable (`"ERR_CA_CSR_INVALID"`) so callers, HTTP edges and tests can
 * branch on it; the message is for people and never carries secret material.
 *
 * @example
 * ```ts
 * import { ApplianceError } from "./errors.ts";
 * class CaError extends ApplianceError {}
 * const err = new CaError("ERR_CA_CSR_INVALID", 'Cannot issue certificate for "a7c": CSR signature is invalid');
 * console.assert(err.name === "CaError" && err.code === "ERR_CA_CSR_INVALID");
 * ```
 */
export class ApplianceError extends Error {
  /** Stable machine-readable code such as `ERR_CA_CSR_INVALID`. */
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = this.constructor.name;
  }
}

/**
 * A command-line usage mistake: unknown flag, missing argument, bad value.
 * `main.ts` maps it to exit code 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./errors.ts";
 * const err = new UsageError('Missing required flag "--dir"');
 * console.assert(err.code === "ERR_USAGE");
 * ```
 */
export class UsageError extends ApplianceError {
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_USAGE", message, options);
  }
}

/**
 * Returns a short, secret-free description of any thrown value, for logs.
 *
 * @example
 * ```ts
 * import { describeError } from "./errors.ts";
 * console.assert(describeError(new Error("boom")) === "boom");
 * ```
 */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const message = redactSecrets(err.message);
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && !message.includes(code)) {
      return `${message} (${code})`;
    }
    return message;
  }
  return redactSecrets(String(err));
}

/**
 * Removes secret material from a text bound for a log line or an error
 * message: the value the runtime quotes when it refuses a header (`Invalid
 * header value: "Bearer <token>"` — from a misplaced `token_file` that value
 * can be a private key), bearer credentials, and PEM private-key blocks.
 *
 * @example
 * ```ts
 * import { redactSecrets } from "./errors.ts";
 * console.assert(redactSecrets('Invalid header value: "Bearer a.b.c"') === "Invalid header value (not shown)");
 * console.assert(redactSecrets("sent Bearer a.b.c") === "sent Bearer (not shown)");
 * ```
 */
export function redactSecrets(text: string): string {
  if (!SECRET_HINT.test(text)) return text;
  return text
    .replace(/(invalid header (?:value|name))\b[\s\S]*/i, "$1 (not shown)")
    .replace(
      /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g,
      "(private key not shown)",
    )
    .replace(/\b(bearer)\s+[^\s"',]+/gi, "$1 (not shown)");
}
const SECRET_HINT = /invalid header|PRIVATE KEY|bearer\s/i;

/**
 * Why a `fetch` failed. Deno throws `TypeError("fetch failed")` and keeps the
 * reason (refused, DNS, TLS trust, ...) in `cause`; this returns that reason
 * without the URL Deno puts in front of it.
 *
 * @example
 * ```ts
 * import { describeFetchError } from "./errors.ts";
 * const err = new TypeError("fetch failed", {
 *   cause: new Error("error sending request for url (https://ca/v1/sign): client error (Connect): tcp connect error: Connection refused"),
 * });
 * console.assert(describeFetchError(err) === "client error (Connect): tcp connect error: Connection refused");
 * ```
 */
export function describeFetchError(err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined;
  if (!(cause instanceof Error)) return describeError(err);
  return describeError(cause).replace(
    /^error sending request for url \([^)]*\): /,
    "",
  );
}

/**
 * Schema building blocks shared by every section: durations, addresses, key
 * types. Pure: no I/O.
 * @module
 */
import { z } from "zod";
import { parseDuration } from "../common/duration.ts";
import { KEY_TYPES } from "../pki/mod.ts";

/**
 * A duration written as `"24h"`, `"90s"`, `"1h30m"`, `"250ms"`; parsed to
 * milliseconds. Use `.prefault("24h")` for defaults so they go through parsing.
 */
export const Duration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch {
    ctx.addIssue({
      code: "custom",
      message:
        `invalid duration "${text}": use a number and a unit (ms, s, m, h, d), e.g. "90s"`,
    });
    return z.NEVER;
  }
});

/** A parsed `host:port` address. */
export interface Address {
  hostname: string;
  port: number;
}

/**
 * An address written as `host:port` (`127.0.0.1:8443`, `0.0.0.0:61001`,
 * `[::1]:80`, `localhost:0`). Port 0 means "any free port".
 */
export const Address = z.string().transform((text, ctx): Address => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(
    text.trim(),
  );
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    ctx.addIssue({
      code: "custom",
      message:
        `invalid address "${text}": write host:port, e.g. "127.0.0.1:8443"`,
    });
    return z.NEVER;
  }
  return { hostname: m[1] ?? m[2]!, port };
});

/**
 * Whether a host name (URL hostname or address, brackets allowed) is
 * loopback: `localhost`, `::1` or `127.x.y.z`.
 */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\./.test(h);
}

/**
 * Whether a JWKS URL is safe to fetch keys from: `https://`, or `http://`
 * on loopback only (keys fetched over plain http can be swapped in transit).
 */
export function safeJwksUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === "https:" ||
      (u.protocol === "http:" && isLoopback(u.hostname));
  } catch {
    return false; // z.url() reports the syntax
  }
}

/** Formats an {@linkcode Address} back to `host:port`. */
export function formatAddress(a: Address): string {
  return a.hostname.includes(":")
    ? `[${a.hostname}]:${a.port}`
    : `${a.hostname}:${a.port}`;
}

/** Private key algorithms Sigil can generate and accept. */
export const KeyType = z.enum(KEY_TYPES);
/** A key algorithm name. */
export type KeyType = z.output<typeof KeyType>;

/** Lowest level of a role's log lines that is written (`log_level`). */
export const LogLevel = z.enum(["debug", "info", "warn", "error"]).default(
  "info",
);

/** A non-empty filesystem path. */
export const FilePath = z.string().min(1, "must be a non-empty path");

/** An identity value: GUID-like, no commas, slashes, spaces or control characters. */
export const IdentityValue = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
  "must be 1-128 letters, digits, '.', '_' or '-' (GUID-like), starting with a letter or digit",
);

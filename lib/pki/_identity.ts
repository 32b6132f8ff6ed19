/**
 * The instance identity carried by a certificate, its validation and its
 * SPIFFE ID.
 * @module
 */
import { isIP } from "node:net";
import { PkiError } from "./errors.ts";

/** Who an instance is: ids of the instance, its app, space and org, and its addresses. */
export interface Identity {
  instanceId: string;
  app: string;
  space: string;
  org: string;
  ips: string[];
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Checks every identity field before it reaches a certificate: GUID-like ids
 * (letters, digits, `.`, `_`, `-`; no commas, slashes, spaces or control
 * characters) and literal IP addresses.
 *
 * @param identity The identity to check.
 * @returns A normalised copy (IPs deduplicated).
 * @throws {PkiError} `ERR_PKI_IDENTITY_INVALID`, naming the field.
 *
 * @example
 * ```ts
 * import { validateIdentity } from "./_identity.ts";
 * const id = validateIdentity({ instanceId: "a1", app: "b2", space: "c3", org: "d4", ips: ["10.0.0.5"] });
 * console.assert(id.ips.length === 1);
 * ```
 */
export function validateIdentity(identity: Identity): Identity {
  const fields: Array<[keyof Identity, string]> = [
    ["instanceId", "instance_id"],
    ["app", "app"],
    ["space", "space"],
    ["org", "org"],
  ];
  for (const [key, name] of fields) {
    const v = identity[key];
    if (typeof v !== "string" || !ID.test(v)) {
      throw new PkiError(
        "ERR_PKI_IDENTITY_INVALID",
        `Invalid identity: ${name} must be 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit${
          typeof v === "string"
            ? ` (got ${JSON.stringify(v.slice(0, 64))})`
            : ""
        }`,
      );
    }
  }
  if (!Array.isArray(identity.ips)) {
    throw new PkiError(
      "ERR_PKI_IDENTITY_INVALID",
      "Invalid identity: ips must be a list of IP addresses",
    );
  }
  for (const ip of identity.ips) {
    if (typeof ip !== "string" || isIP(ip) === 0) {
      throw new PkiError(
        "ERR_PKI_IDENTITY_INVALID",
        `Invalid identity: ips contains ${
          JSON.stringify(String(ip).slice(0, 64))
        }, which is not an IP address`,
      );
    }
  }
  return {
    instanceId: identity.instanceId,
    app: identity.app,
    space: identity.space,
    org: identity.org,
    ips: [...new Set(identity.ips)],
  };
}

/**
 * The SPIFFE ID of an instance:
 * `spiffe://<trust-domain>/org/<o>/space/<s>/app/<a>/instance/<i>`.
 *
 * @example
 * ```ts
 * import { spiffeId } from "./_identity.ts";
 * const u = spiffeId("sigil.internal", { instanceId: "i", app: "a", space: "s", org: "o", ips: [] });
 * console.assert(u === "spiffe://sigil.internal/org/o/space/s/app/a/instance/i");
 * ```
 */
export function spiffeId(trustDomain: string, id: Identity): string {
  return `spiffe://${trustDomain}/org/${id.org}/space/${id.space}/app/${id.app}/instance/${id.instanceId}`;
}

/** Validates a trust domain (a lowercase DNS-like name). */
export function validateTrustDomain(td: string): string {
  if (!/^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/.test(td)) {
    throw new PkiError(
      "ERR_PKI_IDENTITY_INVALID",
      `Invalid trust domain ${
        JSON.stringify(td)
      }: use lowercase letters, digits, '.' and '-', e.g. "sigil.internal"`,
    );
  }
  return td;
}

/** Parses a SPIFFE instance ID back into its parts; `undefined` when it is not one. */
export function parseSpiffeId(
  uri: string,
): {
  trustDomain: string;
  org: string;
  space: string;
  app: string;
  instanceId: string;
} | undefined {
  const m =
    /^spiffe:\/\/([^/]+)\/org\/([^/]+)\/space\/([^/]+)\/app\/([^/]+)\/instance\/([^/]+)$/
      .exec(uri);
  if (!m) return undefined;
  return {
    trustDomain: m[1]!,
    org: m[2]!,
    space: m[3]!,
    app: m[4]!,
    instanceId: m[5]!,
  };
}

/**
 * The router identity: the certificate a router presents to the proxies
 * (client) and on its registration API (server). Its SPIFFE ID
 * `spiffe://<trust-domain>/router/<name>` can never be an instance's
 * (`.../org/.../instance/<id>`), so a proxy that allows that URI accepts
 * routers only.
 * @module
 */
import { isIP } from "node:net";
import { PkiError } from "./errors.ts";

/** Who a router is: its name (CN, first DNS SAN), more DNS names, addresses. */
export interface RouterIdentity {
  name: string;
  dnsNames: string[];
  ips: string[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Checks a router identity before it reaches a certificate. A name shaped
 * like a GUID is refused: instance ids are GUIDs, and the router verifies
 * backends by their DNS SAN.
 *
 * @returns A normalised copy (duplicates removed; the name is not repeated in `dnsNames`).
 * @throws {PkiError} `ERR_PKI_IDENTITY_INVALID`, naming the field.
 * @example
 * ```ts
 * import { validateRouterIdentity } from "./_router_identity.ts";
 * const r = validateRouterIdentity({ name: "router-1", dnsNames: ["router-1", "router.internal"], ips: ["10.0.0.10"] });
 * console.assert(r.dnsNames.length === 1);
 * ```
 */
export function validateRouterIdentity(r: RouterIdentity): RouterIdentity {
  const bad = (why: string) =>
    new PkiError("ERR_PKI_IDENTITY_INVALID", `Invalid router identity: ${why}`);
  if (typeof r.name !== "string" || !NAME.test(r.name)) {
    throw bad(
      `name must be 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit${
        typeof r.name === "string"
          ? ` (got ${JSON.stringify(r.name.slice(0, 64))})`
          : ""
      }`,
    );
  }
  if (GUID.test(r.name)) {
    throw bad(
      `name "${r.name}" looks like an instance GUID; use a name such as "router-1"`,
    );
  }
  if (!Array.isArray(r.dnsNames) || !Array.isArray(r.ips)) {
    throw bad("dns_names and ips must be lists");
  }
  for (const d of r.dnsNames) {
    if (typeof d !== "string" || !DNS_NAME.test(d) || GUID.test(d)) {
      throw bad(
        `dns_names contains ${
          JSON.stringify(String(d).slice(0, 64))
        }, which is not a DNS name (or looks like an instance GUID)`,
      );
    }
  }
  for (const ip of r.ips) {
    if (typeof ip !== "string" || isIP(ip) === 0) {
      throw bad(
        `ips contains ${
          JSON.stringify(String(ip).slice(0, 64))
        }, which is not an IP address`,
      );
    }
  }
  return {
    name: r.name,
    dnsNames: [...new Set(r.dnsNames)].filter((d) => d !== r.name),
    ips: [...new Set(r.ips)],
  };
}

/**
 * The SPIFFE ID of a router: `spiffe://<trust-domain>/router/<name>`.
 *
 * @example
 * ```ts
 * import { routerSpiffeId } from "./_router_identity.ts";
 * console.assert(routerSpiffeId("t.example", "router-1") === "spiffe://t.example/router/router-1");
 * ```
 */
export function routerSpiffeId(trustDomain: string, name: string): string {
  return `spiffe://${trustDomain}/router/${name}`;
}

/** Parses a router SPIFFE ID; `undefined` when it is not one. */
export function parseRouterSpiffeId(
  uri: string,
): { trustDomain: string; name: string } | undefined {
  const m = /^spiffe:\/\/([^/]+)\/router\/([^/]+)$/.exec(uri);
  return m ? { trustDomain: m[1]!, name: m[2]! } : undefined;
}

/**
 * Signing policy: an identity may be issued only when the caller's token
 * claims cover its app, space, org and every address.
 * @module
 */
import { BlockList, isIP } from "node:net";
import type { Identity, RouterIdentity } from "../pki/mod.ts";
import { CaError } from "./errors.ts";
import type { TokenClaims } from "../token/mod.ts";

/**
 * Matches a value against a `*` glob.
 *
 * @example
 * ```ts
 * import { globMatch } from "./_policy.ts";
 * console.assert(globMatch("app-*", "app-42") && !globMatch("app-*", "web-1"));
 * ```
 */
export function globMatch(glob: string, value: string): boolean {
  if (glob === "*") return true;
  const re = new RegExp(
    "^" +
      glob.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(
        ".*",
      ) + "$",
  );
  return re.test(value);
}

/**
 * Parses CIDR strings into a matcher.
 *
 * @throws {SyntaxError} On a malformed CIDR (names it).
 * @example
 * ```ts
 * import { cidrMatcher } from "./_policy.ts";
 * const m = cidrMatcher(["10.0.0.0/8"]);
 * console.assert(m("10.1.2.3") && !m("192.168.0.1"));
 * ```
 */
export function cidrMatcher(cidrs: string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits, extra] = c.split("/");
    const family = addr ? isIP(addr) : 0;
    const prefix = Number(bits);
    if (
      !addr || family === 0 || extra !== undefined || bits === undefined ||
      !/^\d+$/.test(bits) ||
      prefix > (family === 4 ? 32 : 128)
    ) {
      throw new SyntaxError(
        `Invalid CIDR "${c}": write address/prefix, e.g. "10.0.0.0/8"`,
      );
    }
    list.addSubnet(addr, prefix, family === 4 ? "ipv4" : "ipv6");
  }
  return (ip) => {
    const family = isIP(ip);
    return family !== 0 && list.check(ip, family === 4 ? "ipv4" : "ipv6");
  };
}

/**
 * Throws unless the grant covers the identity.
 *
 * @throws {CaError} `ERR_CA_FORBIDDEN`, naming the field that is outside the claims.
 * @example
 * ```ts
 * import { authorize } from "./_policy.ts";
 * authorize(
 *   { subject: "cell", scopes: ["cert.issue"], apps: ["*"], spaces: ["*"], orgs: ["o"], cidrs: ["10.0.0.0/8"] },
 *   { instanceId: "i", app: "a", space: "s", org: "o", ips: ["10.0.0.1"] },
 * );
 * ```
 */
export function authorize(
  grant: Omit<TokenClaims, "expiresAt" | "id" | "routers">,
  id: Identity,
): void {
  const deny = (what: string) =>
    new CaError(
      "ERR_CA_FORBIDDEN",
      `Cannot issue certificate for "${id.instanceId}": ${what} is outside the claims of token "${grant.subject}"`,
    );
  if (!grant.apps.some((g) => globMatch(g, id.app))) {
    throw deny(`app "${id.app}"`);
  }
  if (!grant.spaces.some((g) => globMatch(g, id.space))) {
    throw deny(`space "${id.space}"`);
  }
  if (!grant.orgs.some((g) => globMatch(g, id.org))) {
    throw deny(`org "${id.org}"`);
  }
  checkAddresses(grant.cidrs, id.ips, deny);
}

/**
 * Throws unless a `cert.router` grant covers the router identity: its name
 * and every DNS name match the token's `routers` globs, every address is in
 * its `cidrs`.
 *
 * @throws {CaError} `ERR_CA_FORBIDDEN`, naming what is outside the claims.
 * @example
 * ```ts
 * import { authorizeRouter } from "./_policy.ts";
 * authorizeRouter(
 *   { subject: "routers", routers: ["router-*"], cidrs: ["10.0.0.0/24"] },
 *   { name: "router-1", dnsNames: [], ips: ["10.0.0.10"] },
 * );
 * ```
 */
export function authorizeRouter(
  grant: { subject: string; routers: string[]; cidrs: string[] },
  router: RouterIdentity,
): void {
  const deny = (what: string) =>
    new CaError(
      "ERR_CA_FORBIDDEN",
      `Cannot issue router certificate for "${router.name}": ${what} is outside the claims of token "${grant.subject}"`,
    );
  for (const name of [router.name, ...router.dnsNames]) {
    if (!grant.routers.some((g) => globMatch(g, name))) {
      throw deny(`name "${name}"`);
    }
  }
  checkAddresses(grant.cidrs, router.ips, deny);
}

/** Throws `deny(...)` unless every address is inside the token's CIDRs. */
function checkAddresses(
  cidrs: string[],
  ips: string[],
  deny: (what: string) => CaError,
): void {
  let inRange: (ip: string) => boolean;
  try {
    inRange = cidrMatcher(cidrs);
  } catch {
    throw deny("the address list (the token carries a malformed CIDR)");
  }
  for (const ip of ips) if (!inRange(ip)) throw deny(`address "${ip}"`);
}
